// The registry page: discovery for everyone, approvals for admins and owning teams.
// Everything user-supplied is rendered with textContent, never as HTML.
"use strict";

const META = "dev.bastion/registry";
const OFFICIAL = "io.modelcontextprotocol.registry/official";
let servers = [];

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function token() { return sessionStorage.getItem("bastion-token") || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + token() }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const body = response.headers.get("content-type", "").includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && (body.error || body.error_description)) || response.statusText);
  return body;
}

function setStatus(message) { document.getElementById("status").textContent = message || ""; }

async function loadServers() {
  servers = [];
  let cursor = null;
  do {
    const page = await api("/v0.1/servers?version=latest&limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    servers.push(...page.servers);
    cursor = page.metadata.nextCursor;
  } while (cursor);
  renderServers();
}

function renderServers() {
  const query = document.getElementById("filter").value.toLowerCase();
  const tbody = document.querySelector("#servers tbody");
  tbody.replaceChildren();
  for (const entry of servers) {
    const s = entry.server, ours = entry._meta[META], official = entry._meta[OFFICIAL];
    const haystack = [s.name, s.title, s.description, ours.owner.team, ...ours.tools.map(t => t.name)].join(" ").toLowerCase();
    if (query && !haystack.includes(query)) continue;
    const row = el("tr");
    const name = el("td");
    name.append(el("strong", s.title || s.name), el("div", s.name + " · v" + s.version, "muted"), el("div", s.description));
    row.append(name, el("td", ours.owner.team), el("td", ours.owner.supportChannel));
    const posture = el("td");
    posture.append(el("span", ours.environment, "badge"), el("span", ours.classification, "badge"),
                   el("span", official.status + " · " + ours.reviewStatus, "badge"));
    if (ours.allowedGroups.length) posture.append(el("div", "groups: " + ours.allowedGroups.join(", "), "muted"));
    const health = el("td");
    health.append(el("span", ours.health.status, "badge " + ours.health.status));
    if (ours.health.latencyMs !== null) health.append(el("div", ours.health.latencyMs.toFixed(1) + " ms", "muted"));
    const tools = el("td");
    for (const tool of ours.tools) {
      const readOnly = tool.annotations && tool.annotations.readOnlyHint;
      tools.append(el("span", ours.shortName + "__" + tool.name, "badge " + (readOnly ? "ro" : "rw")));
    }
    row.append(posture, health, tools);
    tbody.append(row);
  }
}

async function loadApprovals() {
  let page;
  try { page = await api("/admin/v1/approvals?status=pending"); } catch (_) { return; }
  const section = document.getElementById("approvals-section");
  section.hidden = page.items.length === 0;
  const tbody = document.querySelector("#approvals tbody");
  tbody.replaceChildren();
  for (const a of page.items) {
    const row = el("tr");
    const args = el("td"); args.append(el("pre", JSON.stringify(a.arguments, null, 2)));
    const actions = el("td");
    for (const decision of ["approve", "reject"]) {
      const button = el("button", decision);
      button.addEventListener("click", async () => {
        try {
          await api("/admin/v1/approvals/decide", { method: "POST", headers: { "content-type": "application/json" },
                                                   body: JSON.stringify({ ids: [a.id], decision }) });
          await loadApprovals();
        } catch (error) { setStatus(error.message); }
      });
      actions.append(button);
    }
    row.append(el("td", new Date(a.createdAt).toLocaleString()), el("td", a.requester),
               el("td", a.server + " / " + a.tool), args, el("td", a.reasons.join("; ")), actions);
    tbody.append(row);
  }
}

async function refresh() {
  setStatus("");
  if (!token()) { setStatus("Paste a token (bastion token --user … or an API key) to see the registry."); return; }
  try {
    const me = await api("/v1/me");
    document.getElementById("who").textContent = me.subject + " (" + me.roles.join(", ") + ")";
    await loadServers();
    await loadApprovals();
  } catch (error) { setStatus(error.message); }
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem("bastion-token", document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  refresh();
});
document.getElementById("filter").addEventListener("input", renderServers);
refresh();
