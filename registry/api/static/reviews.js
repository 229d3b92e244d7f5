// Reviews: the queue of versions waiting for a review, and one version's review page — its tools, prompts,
// resources and resource templates diffed against the previous approved version, the poisoning-lint
// findings, and the decision form.
import {
  api, badge, el, field, fail, flash, h, heading, link, plural, serverHref, setStatus, table, uid, when,
} from "/ui/core.js";

function reviewHref(server, version) { return "#/reviews/" + encodeURIComponent(server) + "/" + encodeURIComponent(version); }

export async function renderQueue(view) {
  view.append(...heading("Review queue", "Versions submitted for review, oldest first. Members of a server's owning team cannot review it."));
  const items = await api("/admin/v1/reviews");
  if (!items.length) { view.append(el("p", "Nothing is waiting for a review.", "empty")); return; }
  view.append(table("Versions in review", ["Version", "Team", "Classification", "Still needs", "Submitted", "You"], items.map(i => [
    h("div", {}, link(reviewHref(i.server, i.version), i.server + " " + i.version), el("div", [plural(i.toolCount, "tool"),
      i.promptCount ? plural(i.promptCount, "prompt") : "", i.resourceCount ? plural(i.resourceCount, "resource") : ""]
      .filter(Boolean).join(" · "), "muted")),
    i.team, badge(i.classification), i.missingReviews.join(", ") || "—",
    i.submittedBy + " · " + when(i.submittedAt),
    i.canReview ? link(reviewHref(i.server, i.version), "Review") : el("span", i.cannotReviewReason, "muted"),
  ])));
}

// A line diff (longest common subsequence) of two texts: [{op: " "|"-"|"+", line}].
export function lineDiff(before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const n = a.length, m = b.length;
  if (n * m > 250_000) return [...a.map(line => ({ op: "-", line })), ...b.map(line => ({ op: "+", line }))];
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push({ op: " ", line: a[i] }); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ op: "-", line: a[i++] });
    else out.push({ op: "+", line: b[j++] });
  }
  while (i < n) out.push({ op: "-", line: a[i++] });
  while (j < m) out.push({ op: "+", line: b[j++] });
  return out;
}

function text(value) { return value === null || value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value, null, 2); }

function diffBlock(change) {
  const pre = h("pre", { class: "diff", "aria-label": "Changes to " + change.field });
  for (const { op, line } of lineDiff(text(change.before), text(change.after))) {
    pre.append(h("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" },
      h("span", { class: "sr-only" }, op === "+" ? "added: " : op === "-" ? "removed: " : ""), op + " " + line + "\n"));
  }
  return h("div", { class: "field-diff" }, h("h5", {}, change.field), pre);
}

// What a tool, prompt, resource or resource template is called in the page's sentences.
const NOUNS = { prompt: "prompt", resource: "resource", resourceTemplate: "resource template" };

function toolDiff(t, prefix) {
  const lint = t.lint.length
    ? h("div", { class: "lint bad", role: "note" }, h("strong", {}, "Poisoning lint: " + t.lint.length + " finding" + (t.lint.length === 1 ? "" : "s")),
        h("ul", {}, t.lint.map(f => h("li", {}, h("code", {}, f.field), " — ", f.rule, ": ", f.message))))
    : t.change === "removed" ? null : h("p", { class: "lint ok" }, "Poisoning lint: clean");
  const body = [];
  if (t.change === "changed") body.push(...t.fields.map(diffBlock));
  const noun = NOUNS[t.kind] || "tool";
  if (t.change === "removed") body.push(el("p", "Clients lose this " + noun + " when this version is approved.", "muted"));
  return h("section", { class: "tool-diff " + t.change, "aria-label": prefix + t.name + " (" + t.change + ")" },
    h("h4", {}, h("code", {}, prefix + t.name), " ", t.kind ? badge(noun) : null, " ", badge(t.change, "chg-" + t.change)),
    t.afterHash ? el("div", "hash " + t.afterHash + (t.beforeHash && t.beforeHash !== t.afterHash ? " (was " + t.beforeHash + ")" : ""), "muted hash") : null,
    ...body, lint);
}

export async function renderReview(view, server, version) {
  const base = "/admin/v1/servers/" + server + "/versions/" + encodeURIComponent(version);
  const [v, diff, queue, srv] = await Promise.all([api(base), api(base + "/diff"), api("/admin/v1/reviews"), api("/admin/v1/servers/" + server)]);
  const item = queue.find(i => i.server === server && i.version === version);
  view.append(...heading("Review " + server + " " + version, srv.description));
  view.append(h("p", {}, link(serverHref(server), "Server page"), " · ", link("#/reviews", "Back to the queue")));
  view.append(h("p", {}, "Status ", badge(v.status.replace(/_/g, " "), "st-" + v.status), " · team ", h("strong", {}, srv.team),
    " · classification ", badge(srv.classification), " · submitted by ", v.createdBy, " · needs ",
    (v.requiredReviews.join(", ") || "no reviews"), v.missingReviews.length ? " (missing: " + v.missingReviews.join(", ") + ")" : ""));
  if (v.reviews.length) {
    view.append(table("Reviews so far", ["Kind", "Decision", "Reviewer", "Notes", "When"], v.reviews.map(r => [
      r.kind, badge(r.decision, r.decision === "approve" ? "up" : "down"), r.reviewer, r.notes, when(r.createdAt)])));
  }

  const counts = {};
  for (const t of diff.tools) counts[t.change] = (counts[t.change] || 0) + 1;
  view.append(h("h3", {}, diff.against ? "Tool definitions against " + diff.against + " (the approved version clients get)" : "Tool definitions (first version: everything is new)"));
  view.append(el("p", Object.entries(counts).map(([k, n]) => n + " " + k).join(" · "), "muted"));
  const items = [["Prompts", diff.prompts || []], ["Resources", diff.resources || []], ["Resource templates", diff.resourceTemplates || []]]
    .filter(([, list]) => list.length);
  const findings = [diff.tools, ...items.map(([, list]) => list)].flat().reduce((n, t) => n + t.lint.length, 0);
  if (findings) view.append(h("p", { class: "lint bad", role: "alert" }, findings + " poisoning-lint finding(s): read them before approving."));
  for (const t of diff.tools) view.append(toolDiff(t, srv.shortName + "__"));
  for (const [title, list] of items) {
    const changed = {};
    for (const t of list) changed[t.change] = (changed[t.change] || 0) + 1;
    view.append(h("h3", {}, title), el("p", Object.entries(changed).map(([k, n]) => n + " " + k).join(" · "), "muted"));
    for (const t of list) view.append(toolDiff(t, srv.shortName + "__"));
  }

  view.append(h("h3", {}, "Your decision"));
  if (v.status !== "in_review") { view.append(el("p", "This version is " + v.status + ": it takes no reviews.", "muted")); return; }
  if (item && !item.canReview) {
    view.append(h("div", { class: "sod", role: "note" }, h("strong", {}, "You cannot review this version. "), item.cannotReviewReason,
      ". Separation of duties: the people who build a server are not the ones who approve it."));
    return;
  }
  const kinds = [...v.missingReviews, ...v.requiredReviews.filter(k => !v.missingReviews.includes(k))];
  const kind = h("select", { name: "kind" }, kinds.map(k => h("option", { value: k }, k + (v.missingReviews.includes(k) ? " (needed)" : ""))));
  const group = uid("decision");
  const radios = h("fieldset", { class: "radios" }, h("legend", {}, "Decision"),
    ...["approve", "reject"].map(d => h("label", {}, h("input", { type: "radio", name: group, value: d, checked: d === "approve" }), " " + d)));
  const notes = h("textarea", { name: "notes", rows: 3, maxlength: 10000 });
  const submit = h("button", { type: "submit", class: "primary" }, "Record review");
  const form = h("form", { class: "review-form" }, field("Review kind", kind), radios,
    field("Notes", notes, "Required when rejecting: the owners read it."), h("div", { class: "actions" }, submit));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    const decision = form.querySelector("input[name='" + group + "']:checked").value;
    if (decision === "reject" && !notes.value.trim()) {
      notes.setAttribute("aria-invalid", "true");
      setStatus("Say why you reject it: the notes are required when rejecting.");
      notes.focus();
      return;
    }
    notes.removeAttribute("aria-invalid");
    submit.disabled = true;
    try {
      const out = await api(base + "/reviews", { method: "POST", json: { kind: kind.value, decision, notes: notes.value.trim() } });
      flash(server + " " + version + ": " + kind.value + " review recorded (" + decision + "); the version is now "
        + out.status.replace(/_/g, " ") + (out.missingReviews.length ? ", still needs " + out.missingReviews.join(", ") : ""), "ok");
      location.hash = "#/reviews";
    } catch (error) { fail(error); } finally { submit.disabled = false; }
  });
  view.append(form);
}
