// Servers: the list (published ones from discovery, plus drafts for owners and reviewers) with filters,
// and a server's page: versions with their tools, prompts, resources and resource templates, reviews,
// policies, client rules, health and change log.
import {
  META, OFFICIAL, ApiError, allPages, api, badge, confirmDialog, el, field, fail, h, heading, isAdmin, isReviewer,
  json, link, num, plural, select, serverHref, setStatus, table, user, when,
} from "/ui/core.js";

const FILTERS = [["team", "Team"], ["status", "Status"], ["classification", "Classification"],
                 ["environment", "Environment"], ["health", "Health"]];
const state = { filters: { q: "" } };

async function discovery() {
  const rows = [];
  let cursor = null;
  do {
    const page = await api("/v0.1/servers?version=latest&limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    rows.push(...page.servers);
    cursor = page.metadata.nextCursor;
  } while (cursor && rows.length < 2000);
  return rows;
}

function mayManage() { return isReviewer() || Boolean(user.me && user.me.teams.length); }

// One row per server, whichever API it came from (the admin API adds drafts and the newest status).
async function loadRows() {
  const byName = new Map();
  for (const entry of await discovery()) {
    const s = entry.server, ours = entry._meta[META] || {}, official = entry._meta[OFFICIAL] || {};
    byName.set(s.name, {
      name: s.name, title: s.title, description: s.description, team: ours.owner ? ours.owner.team : "",
      classification: ours.classification, environment: ours.environment,
      health: ours.health ? ours.health.status : "unknown", latency: ours.health ? ours.health.latencyMs : null,
      status: official.status === "active" ? (ours.reviewStatus || "approved") : (official.status || ""),
      version: s.version, tools: (ours.tools || []).map(t => (ours.shortName || "") + "__" + t.name),
      items: [...(ours.prompts || []), ...(ours.resources || []), ...(ours.resourceTemplates || [])]
        .map(i => (ours.shortName || "") + "__" + i.name),
      counts: itemCounts(ours),
    });
  }
  if (mayManage()) {
    try {
      for (const s of await allPages("/admin/v1/servers")) {
        const known = byName.get(s.name) || { tools: [], items: [], counts: "" };
        byName.set(s.name, Object.assign({}, known, {
          name: s.name, title: s.title, description: s.description, team: s.team, classification: s.classification,
          environment: s.environment, health: s.health.status, latency: s.health.latencyMs,
          status: s.newestStatus || "no versions", version: s.newestVersion || s.latestVersion || "—", live: s.latestVersion,
        }));
      }
    } catch (error) { if (!(error instanceof ApiError && error.status === 403)) throw error; }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export async function renderList(view) {
  view.append(...heading("Servers", "Every MCP server you can see: published ones, and drafts of your teams' servers."));
  const rows = await loadRows();
  const controls = h("form", { class: "filters", role: "search", "aria-label": "Filter servers", onsubmit: e => e.preventDefault() });
  const q = h("input", { type: "search", name: "q", value: state.filters.q, placeholder: "name, description, tool or prompt" });
  controls.append(field("Search", q));
  const selects = {};
  for (const [key, label] of FILTERS) {
    const values = [...new Set(rows.map(r => r[key]).filter(Boolean))].sort();
    selects[key] = select(key, [["", "any"], ...values], state.filters[key] || "");
    controls.append(field(label, selects[key]));
  }
  const count = h("p", { class: "muted", role: "status" });
  const holder = h("div");
  view.append(controls, count, holder);
  const draw = () => {
    state.filters.q = q.value.trim().toLowerCase();
    for (const [key] of FILTERS) state.filters[key] = selects[key].value;
    const shown = rows.filter(r => FILTERS.every(([key]) => !state.filters[key] || r[key] === state.filters[key])
      && (!state.filters.q || [r.name, r.title, r.description, r.team, ...r.tools, ...r.items].join(" ").toLowerCase().includes(state.filters.q)));
    count.textContent = shown.length + " of " + rows.length + " servers";
    holder.replaceChildren(table("Servers", ["Server", "Team", "Status", "Posture", "Health", "Tools"], shown.map(r => [
      h("div", {}, link(serverHref(r.name), r.title || r.name), el("div", r.name + " · v" + r.version, "muted"),
        el("div", r.description)),
      r.team,
      h("div", {}, badge(String(r.status).replace(/_/g, " "), "st-" + r.status),
        r.live && r.live !== r.version ? el("div", "v" + r.live + " is live", "muted") : null),
      h("div", {}, badge(r.environment), badge(r.classification)),
      h("div", {}, badge(r.health, r.health), r.latency !== null && r.latency !== undefined ? el("div", num(r.latency, 1) + " ms", "muted") : null),
      h("div", {}, r.tools.length ? r.tools.length + " tools" : "—", r.counts ? el("div", r.counts, "muted") : null),
    ]), "servers"));
  };
  controls.addEventListener("input", draw);
  draw();
}

// -- a server's page --------------------------------------------------------------------------------------

function dl(pairs) {
  const list = h("dl", { class: "facts" });
  for (const [k, v] of pairs) if (v !== undefined) list.append(h("dt", {}, k), h("dd", {}, v === null || v === "" ? "—" : v));
  return list;
}

function toolCard(t, short) {
  const ann = t.annotations || {};
  return h("details", { class: "tool" },
    h("summary", {}, h("strong", {}, (short ? short + "__" : "") + t.name), " ",
      badge(ann.readOnlyHint ? "read-only" : "writes", ann.readOnlyHint ? "ro" : "rw"),
      ann.destructiveHint ? badge("destructive", "rw") : null),
    h("p", { class: "desc" }, t.description),
    dl([["Definition hash", h("code", {}, t.contentHash || "—")]]),
    h("h5", {}, "Input schema"), json(t.inputSchema || {}),
    t.outputSchema ? h("h5", {}, "Output schema") : null, t.outputSchema ? json(t.outputSchema) : null,
    h("h5", {}, "Annotations"), json(ann));
}

// "2 prompts · 1 resource · 1 resource template" (empty when there are none) of a version or a discovery entry.
function itemCounts(v) {
  const parts = [[v.prompts, "prompt"], [v.resources, "resource"], [v.resourceTemplates, "resource template"]]
    .filter(([list]) => list && list.length).map(([list, word]) => plural(list.length, word));
  return parts.join(" · ");
}

function hashFact(item) { return ["Definition hash", h("code", {}, item.contentHash || "—")]; }

function promptCard(p, short) {
  const args = p.arguments || [];
  return h("details", { class: "tool item" },
    h("summary", {}, h("strong", {}, (short ? short + "__" : "") + p.name), " ", badge("prompt"),
      p.title ? el("span", " " + p.title, "muted") : null),
    h("p", { class: "desc" }, p.description || ""),
    dl([hashFact(p)]),
    args.length
      ? table("Arguments of " + p.name, ["Argument", "Required", "Description"],
          args.map(a => [h("code", {}, a.name), a.required ? "required" : "optional", a.description || ""]))
      : el("p", "No arguments.", "muted"));
}

function resourceCard(r, short, template) {
  const address = template ? r.uriTemplate : r.uri;
  return h("details", { class: "tool item" },
    h("summary", {}, h("strong", {}, (short ? short + "__" : "") + r.name), " ",
      badge(template ? "template" : "resource"), " ", h("code", { class: "uri" }, address)),
    h("p", { class: "desc" }, r.description || ""),
    dl([[template ? "URI template" : "URI", h("code", { class: "uri" }, address)], ["Title", r.title || undefined],
      ["MIME type", r.mimeType || null], hashFact(r)]));
}

// A version's (or discovery entry's) prompts, resources and templates, each group under its heading.
function itemSections(v, short, level = "h4") {
  const out = [];
  if ((v.prompts || []).length) out.push(h(level, {}, "Prompts"), ...v.prompts.map(p => promptCard(p, short)));
  if ((v.resources || []).length) out.push(h(level, {}, "Resources"), ...v.resources.map(r => resourceCard(r, short, false)));
  if ((v.resourceTemplates || []).length) {
    out.push(h(level, {}, "Resource templates"), ...v.resourceTemplates.map(t => resourceCard(t, short, true)));
  }
  return out;
}

async function transition(name, version, status, verb) {
  const { ok, note } = await confirmDialog(verb + " " + name + " " + version + "?",
    status === "deprecated" ? "Clients stop getting this version; calls to its tools are refused." : "", { confirm: verb, note: true });
  if (!ok) return false;
  await api("/admin/v1/servers/" + name + "/versions/" + encodeURIComponent(version) + "/status",
            { method: "POST", json: { status, reason: note || null } });
  setStatus(name + " " + version + ": " + ({ in_review: "submitted for review", deprecated: "deprecated", approved: "reinstated" }[status] || status), "ok");
  return true;
}

function versionActions(server, v, owner, rerender) {
  const actions = h("div", { class: "actions" });
  const add = (label, status, cls) => actions.append(h("button", { type: "button", class: cls || null, onclick: async () => {
    try { if (await transition(server.name, v.version, status, label)) await rerender(); } catch (error) { fail(error); }
  } }, label));
  if (owner && v.status === "draft") add("Submit", "in_review", "primary");
  if (owner && v.status === "approved") add("Deprecate", "deprecated");
  if (owner && v.status === "deprecated") add("Reinstate", "approved");
  if (isReviewer() && v.status === "in_review") {
    actions.append(link("#/reviews/" + encodeURIComponent(server.name) + "/" + encodeURIComponent(v.version), "Review this version", { class: "button" }));
  }
  return actions.childElementCount ? actions : null;
}

function versionSection(server, v, owner, rerender) {
  const reviews = v.reviews.length ? table(null, ["Kind", "Decision", "Reviewer", "Notes", "When"], v.reviews.map(r => [
    r.kind, badge(r.decision, r.decision === "approve" ? "up" : "down"), r.reviewer,
    r.invalidatedAt ? "voided: " + r.invalidatedReason : r.notes, when(r.createdAt)])) : el("p", "No reviews yet.", "muted");
  const transitions = table(null, ["From", "To", "By", "Why", "When"], v.transitions.map(t => [
    t.fromStatus || "—", t.toStatus, t.actor, t.reason || "", when(t.at)]));
  return h("details", { class: "version", open: v.isLatest || v.status === "in_review" || v.status === "draft" ? true : null },
    h("summary", {}, h("strong", {}, "v" + v.version), " ", badge(v.status.replace(/_/g, " "), "st-" + v.status),
      v.isLatest ? badge("latest") : null, " ", el("span", [plural(v.tools.length, "tool"), itemCounts(v), "by " + v.createdBy, when(v.createdAt)]
        .filter(Boolean).join(" · "), "muted")),
    versionActions(server, v, owner, rerender),
    v.missingReviews.length && v.status === "in_review" ? el("p", "Still needs: " + v.missingReviews.join(", ") + " review", "muted") : null,
    h("h4", {}, "Tools"), ...(v.tools.length ? v.tools.map(t => toolCard(t, server.shortName)) : [el("p", "No tools.", "muted")]),
    ...itemSections(v, server.shortName),
    h("h4", {}, "Reviews"), reviews,
    h("h4", {}, "History"), transitions);
}

async function optional(promise, fallback) {
  try { return await promise; } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) return fallback;
    throw error;
  }
}

export async function renderServer(view, name) {
  const path = "/admin/v1/servers/" + name;
  const server = await optional(api(path), null);
  if (!server) return renderPublic(view, name);
  const owner = isAdmin() || (user.me.teams || []).includes(server.team);
  const rerender = async () => { view.replaceChildren(); await renderServer(view, name); };
  const summaries = await allPages(path + "/versions", 50);
  const versions = await Promise.all(summaries.slice(0, 20).map(v => api(path + "/versions/" + encodeURIComponent(v.version))));
  const [policies, clients, events] = await Promise.all([
    optional(api(path + "/policies"), []),
    optional(api("/admin/v1/clients"), null),
    optional(allPages("/admin/v1/events?server=" + encodeURIComponent(name), 200), []),
  ]);
  view.append(...heading(server.title || server.name, server.description));
  const health = server.health;
  view.append(dl([
    ["Name", h("code", {}, server.name)], ["Tool prefix", h("code", {}, server.shortName + "__")],
    ["Owning team", server.team], ["Support", server.effectiveSupportChannel],
    ["Environment", server.environment], ["Classification", server.classification],
    ["Allowed groups", server.allowedGroups.length ? server.allowedGroups.join(", ") : "anyone with access to the classification"],
    ["Transport", server.transport + (server.endpoint ? " · " + server.endpoint : "")],
    ["Caller identity", server.transport === "builtin" ? "in-process" : {
      assertion: "signed assertion (X-Bastion-Assertion)", "token-exchange": "RFC 8693 token exchange", none: "not sent" }[server.identity] || server.identity],
    ["Latest approved", server.latestVersion || "none yet"],
    ["Health", h("span", {}, badge(health.status, health.status), health.latencyMs !== null ? " " + num(health.latencyMs, 1) + " ms" : "",
      health.checkedAt ? el("span", " · checked " + when(health.checkedAt), "muted") : null, health.error ? el("div", health.error, "error") : null)],
  ]));
  if (owner) view.append(h("p", {}, link("#/register?server=" + encodeURIComponent(name), "Add a version of this server")));

  view.append(h("h3", {}, "Versions"));
  if (!versions.length) view.append(el("p", "No versions yet.", "muted"));
  for (const v of versions) view.append(versionSection(server, v, owner, rerender));

  view.append(h("h3", {}, "Policies"));
  view.append(policies.length ? table(null, ["Applies to", "Allowed groups", "Clearance", "Approval", "Rate limit", "Updated"], policies.map(p => [
    p.item ? p.item.kind + " " + server.shortName + "__" + p.item.name : p.tool ? server.shortName + "__" + p.tool : "whole server", (p.allowedGroups || []).join(", ") || "—", p.requiredClearance || "—",
    p.secondApprover ? "someone else approves" : p.requireApproval ? "required" : "no", p.rateLimitPerMinute ? p.rateLimitPerMinute + "/min" : "—",
    p.updatedBy + " · " + when(p.updatedAt)])) : el("p", "No policies: the server's classification and allowed groups decide.", "muted"));

  if (clients !== null) {
    const relevant = clients.filter(c => c.servers === null || c.servers.includes(name));
    view.append(h("h3", {}, "Client rules"));
    view.append(relevant.length ? table(null, ["Client", "Servers", "Environment", "Description"], relevant.map(c => [
      c.clientId, c.servers === null ? "any" : c.servers.join(", "), c.environment || "any", c.description])) : el("p", "No client rule mentions this server.", "muted"));
  }

  const healthEvents = events.filter(e => e.action === "server.health");
  view.append(h("h3", {}, "Health history"));
  view.append(healthEvents.length ? table(null, ["When", "Status", "Was", "Latency", "Error"], healthEvents.map(e => [
    when(e.at), badge(e.details.status, e.details.status), e.details.previous || "—",
    e.details.latencyMs !== undefined ? num(e.details.latencyMs, 1) + " ms" : "—", e.details.error || ""])) : el("p", "No health changes recorded yet.", "muted"));

  view.append(h("h3", {}, "Change log"));
  const changes = events.filter(e => e.action !== "server.health");
  view.append(changes.length ? table(null, ["When", "Who", "What", "Target", "Details"], changes.map(e => [
    when(e.at), e.actor, e.action, e.target, h("details", {}, h("summary", {}, "details"), json(e.details))])) : el("p", "No changes recorded.", "muted"));
}

// What a plain user may see: the published version from discovery.
async function renderPublic(view, name) {
  let entry;
  try { entry = await api("/v0.1/servers/" + name + "/versions/latest"); } catch (error) {
    view.append(...heading("Server not found"), el("p", error.message));
    return;
  }
  const s = entry.server, ours = entry._meta[META] || {};
  view.append(...heading(s.title || s.name, s.description));
  view.append(dl([["Name", h("code", {}, s.name)], ["Version", s.version], ["Owning team", ours.owner ? ours.owner.team : "—"],
    ["Support", ours.owner ? ours.owner.supportChannel : "—"], ["Environment", ours.environment], ["Classification", ours.classification],
    ["Health", ours.health ? badge(ours.health.status, ours.health.status) : "—"]]));
  view.append(h("h3", {}, "Tools"), ...(ours.tools || []).map(t => toolCard(t, ours.shortName)));
  view.append(...itemSections(ours, ours.shortName, "h3"));
}
