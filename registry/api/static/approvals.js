// Approvals: calls parked until a person decides (arguments redacted as in the audit), decided one at a
// time or in a batch after a confirmation; and the history — who decided, when, and how the call went.
import { allPages, api, badge, confirmDialog, el, fail, h, heading, isAdmin, json, setStatus, table, user, when } from "/ui/core.js";

function mine(a) { return a.requester === user.me.subject; }

async function decide(items, decision) {
  const verb = decision === "approve" ? "Approve" : "Reject";
  const what = items.length === 1 ? items[0].server + " / " + items[0].tool + " for " + items[0].requester : items.length + " calls";
  const lines = items.slice(0, 10).map(a => "• " + a.server + " / " + a.tool + " — " + a.requester);
  if (items.length > 10) lines.push("… and " + (items.length - 10) + " more");
  lines.push(decision === "approve" ? "An approved call runs once, with exactly these arguments." : "A rejected call never runs.");
  const { ok, note } = await confirmDialog(verb + " " + what + "?", lines, { confirm: verb, note: true, danger: decision === "reject" });
  if (!ok) return false;
  const out = await api("/admin/v1/approvals/decide", { method: "POST", json: { ids: items.map(a => a.id), decision, note: note || null } });
  return out.length;
}

export async function render(view) {
  view.append(...heading("Approvals", isAdmin() ? "Calls parked for a person's decision, on every server."
    : "Calls parked for your teams' servers, and your own requests."));
  const [pendingItems, history] = await Promise.all([
    allPages("/admin/v1/approvals?status=pending", 500),
    api("/admin/v1/approvals?status=decided&limit=100").then(p => p.items),
  ]);
  const selected = new Set();
  const rerender = async () => { view.replaceChildren(); await render(view); };
  const batch = h("div", { class: "actions batch" });
  const approveSelected = h("button", { type: "button", class: "primary", disabled: true }, "Approve selected");
  const rejectSelected = h("button", { type: "button", class: "danger", disabled: true }, "Reject selected");
  const syncBatch = () => {
    approveSelected.disabled = rejectSelected.disabled = selected.size === 0;
    approveSelected.textContent = "Approve selected (" + selected.size + ")";
    rejectSelected.textContent = "Reject selected (" + selected.size + ")";
  };
  const run = async (items, decision) => {
    try {
      const n = await decide(items, decision);
      if (n) { await rerender(); setStatus(n + " call" + (n === 1 ? "" : "s") + " " + (decision === "approve" ? "approved" : "rejected"), "ok"); }
    } catch (error) { fail(error); }
  };
  approveSelected.addEventListener("click", () => run(pendingItems.filter(a => selected.has(a.id)), "approve"));
  rejectSelected.addEventListener("click", () => run(pendingItems.filter(a => selected.has(a.id)), "reject"));
  batch.append(approveSelected, rejectSelected);

  view.append(h("h3", {}, "Pending (" + pendingItems.length + ")"));
  if (!pendingItems.length) view.append(el("p", "No call is waiting for a decision.", "empty"));
  else {
    view.append(batch);
    view.append(table("Pending approvals", ["", "Requested", "By", "Tool", "Arguments", "Why", "Decide"], pendingItems.map(a => {
      const label = a.server + " / " + a.tool + " requested by " + a.requester;
      const box = h("input", { type: "checkbox", "aria-label": "Select " + label, onchange: e => {
        if (e.target.checked) selected.add(a.id); else selected.delete(a.id);
        syncBatch();
      } });
      const actions = h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", "aria-label": "Approve " + label, onclick: () => run([a], "approve") }, "Approve"),
        h("button", { type: "button", "aria-label": "Reject " + label, onclick: () => run([a], "reject") }, "Reject"));
      return h("tr", {}, h("td", {}, box),
        h("td", {}, when(a.createdAt), el("div", "expires " + when(a.expiresAt), "muted")),
        h("td", {}, a.requester, a.clientId ? el("div", "via " + a.clientId, "muted") : null),
        h("td", {}, h("code", {}, a.server + " / " + a.tool)),
        h("td", {}, json(a.arguments)),
        h("td", {}, a.reasons.join("; "), a.secondApprover ? el("div", "someone other than the requester approves", "muted") : null,
          mine(a) ? el("div", "your own request", "muted") : null),
        h("td", {}, actions));
    }), "approvals"));
  }

  view.append(h("h3", {}, "History"));
  if (!history.length) view.append(el("p", "Nothing decided yet.", "empty"));
  else {
    view.append(table("Decided approvals (newest first)", ["Requested", "By", "Tool", "Decision", "Decided by", "Call", "Note"], history.map(a => [
      when(a.createdAt), a.requester, h("code", {}, a.server + " / " + a.tool),
      badge(a.status, a.status === "rejected" ? "down" : "up"),
      h("div", {}, a.decidedBy || "—", el("div", when(a.decidedAt), "muted")),
      a.callOutcome ? badge(a.callOutcome, a.callOutcome === "ok" ? "up" : "down") : el("span", a.status === "approved" ? "not run yet" : "—", "muted"),
      a.note || "",
    ]), "history"));
  }
}
