// Admins: API keys (the secret is shown once), teams and their members, client rules.
import {
  allPages, api, badge, confirmDialog, el, fail, field, h, heading, select, setStatus, table, when,
} from "/ui/core.js";

function list(value) { return value.split(",").map(s => s.trim()).filter(Boolean); }
function joined(items) { return items && items.length ? items.join(", ") : "—"; }
async function again(view, render, message) { view.replaceChildren(); await render(view); if (message) setStatus(message, "ok"); }

// -- keys ------------------------------------------------------------------------------------------------

export async function renderKeys(view) {
  view.append(...heading("API keys", "Keys for programs and IDEs. A key acts with its role, groups and clearance; revoke one and it is refused at once."));
  const f = {
    name: h("input", { name: "name", required: true, pattern: "[a-zA-Z0-9][a-zA-Z0-9._\\-]*", maxlength: 100 }),
    role: select("role", ["user", "reviewer", "admin"], "user"),
    groups: h("input", { name: "groups", placeholder: "ads-eng, analysts" }),
    clearance: select("clearance", [["", "default (internal)"], "public", "internal", "confidential", "restricted"], ""),
    scope: h("input", { name: "serverScope", placeholder: "all servers" }),
    days: h("input", { name: "expiresInDays", type: "number", min: 1, max: 3650, placeholder: "never" }),
  };
  const create = h("button", { type: "submit", class: "primary" }, "Create key");
  const secret = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-labelledby": "key-create" }, h("h3", { id: "key-create" }, "Create a key"),
    h("div", { class: "grid" }, field("Name", f.name, "Letters, digits, . _ -"), field("Role", f.role), field("Groups", f.groups, "Comma-separated"),
      field("Clearance", f.clearance), field("Server scope", f.scope, "Comma-separated server names; empty: every server it may use"),
      field("Expires in days", f.days)),
    h("div", { class: "actions" }, create));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    create.disabled = true;
    try {
      const body = { name: f.name.value.trim(), role: f.role.value, groups: list(f.groups.value) };
      if (f.clearance.value) body.clearance = f.clearance.value;
      if (f.scope.value.trim()) body.serverScope = list(f.scope.value);
      if (f.days.value) body.expiresInDays = Number(f.days.value);
      const out = await api("/admin/v1/keys", { method: "POST", json: body });
      const value = h("input", { type: "text", readonly: true, value: out.key, class: "secret", "aria-label": "The new key's secret" });
      const copy = h("button", { type: "button", onclick: async () => {
        value.select();
        try { await navigator.clipboard.writeText(out.key); copy.textContent = "Copied"; } catch (_) { copy.textContent = "Select and copy"; }
      } }, "Copy");
      secret.replaceChildren(h("div", { class: "once", role: "alert" },
        h("strong", {}, "Key " + out.name + " created. Copy its secret now: it is shown once and only its hash is stored."),
        h("div", { class: "row" }, value, copy)));
      form.reset();
      await drawKeys();
    } catch (error) { fail(error); } finally { create.disabled = false; }
  });
  const holder = h("div");
  view.append(form, secret, h("h3", {}, "Keys"), holder);
  async function drawKeys() {
    const keys = await allPages("/admin/v1/keys", 1000);
    holder.replaceChildren(keys.length ? table("API keys", ["Name", "Role", "Groups", "Clearance", "Scope", "Created", "Expires", "Last used", "State"], keys.map(k => {
      const state = k.revokedAt ? badge("revoked " + when(k.revokedAt), "down")
        : h("button", { type: "button", "aria-label": "Revoke key " + k.name, onclick: async () => {
          const { ok } = await confirmDialog("Revoke key " + k.name + "?", "Programs using it are refused from now on. This cannot be undone.", { confirm: "Revoke", danger: true });
          if (!ok) return;
          try { await api("/admin/v1/keys/" + encodeURIComponent(k.name), { method: "DELETE" }); await drawKeys(); setStatus("Key " + k.name + " revoked", "ok"); } catch (error) { fail(error); }
        } }, "Revoke");
      return [h("div", {}, k.name, el("div", k.keyId, "muted")), k.role, joined(k.groups), k.clearance || "—", joined(k.serverScope),
        h("div", {}, when(k.createdAt), el("div", "by " + k.createdBy, "muted")), when(k.expiresAt), when(k.lastUsedAt), state];
    }), "keys") : el("p", "No keys yet.", "empty"));
  }
  await drawKeys();
}

// -- teams -----------------------------------------------------------------------------------------------

function teamForm(team, onSaved) {
  const f = {
    name: h("input", { name: "name", required: true, value: team ? team.name : "", readonly: team ? true : null }),
    display: h("input", { name: "displayName", value: team ? team.displayName || "" : "" }),
    support: h("input", { name: "supportChannel", required: true, value: team ? team.supportChannel : "" }),
    members: h("input", { name: "members", value: team ? team.members.join(", ") : "", placeholder: "ann, bob" }),
    groups: h("input", { name: "groups", value: team ? team.groups.join(", ") : "", placeholder: "ads-eng" }),
  };
  const save = h("button", { type: "submit", class: "primary" }, team ? "Save " + team.name : "Create team");
  const form = h("form", { class: team ? "inline-edit" : "card", "aria-label": team ? "Edit team " + team.name : "Create a team" },
    team ? null : h("h3", {}, "Create a team"),
    h("div", { class: "grid" }, field("Name", f.name), field("Display name", f.display), field("Support channel", f.support, "e.g. #ads-eng"),
      field("Members", f.members, "Users, comma-separated"), field("Groups", f.groups, "Identity-provider groups whose members belong")),
    h("div", { class: "actions" }, save));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    save.disabled = true;
    const body = { displayName: f.display.value.trim() || null, supportChannel: f.support.value.trim(),
                   members: list(f.members.value), groups: list(f.groups.value) };
    try {
      if (team) await api("/admin/v1/teams/" + encodeURIComponent(team.name), { method: "PATCH", json: body });
      else await api("/admin/v1/teams", { method: "POST", json: Object.assign({ name: f.name.value.trim() }, body) });
      await onSaved((team ? "Team " + team.name + " saved" : "Team " + f.name.value.trim() + " created"));
    } catch (error) { fail(error); } finally { save.disabled = false; }
  });
  return form;
}

export async function renderTeams(view) {
  view.append(...heading("Teams", "A team owns servers; its members (by user or by group) register, submit and answer for them."));
  const teams = await allPages("/admin/v1/teams", 1000);
  const done = message => again(view, renderTeams, message);
  view.append(teamForm(null, done));
  view.append(h("h3", {}, "Teams (" + teams.length + ")"));
  view.append(table("Teams", ["Team", "Support", "Members", "Groups", ""], teams.map(t => [
    h("div", {}, h("strong", {}, t.name), t.displayName ? el("div", t.displayName, "muted") : null),
    t.supportChannel, joined(t.members), joined(t.groups),
    h("div", { class: "actions" },
      h("details", {}, h("summary", {}, "Edit"), teamForm(t, done)),
      h("button", { type: "button", "aria-label": "Delete team " + t.name, onclick: async () => {
        const { ok } = await confirmDialog("Delete team " + t.name + "?", "A team that owns or owned servers cannot be deleted.", { confirm: "Delete", danger: true });
        if (!ok) return;
        try { await api("/admin/v1/teams/" + encodeURIComponent(t.name), { method: "DELETE" }); await done("Team " + t.name + " deleted"); } catch (error) { fail(error); }
      } }, "Delete")),
  ]), "teams"));
}

// -- clients ---------------------------------------------------------------------------------------------

export async function renderClients(view) {
  view.append(...heading("Client rules", "Rules per OAuth client or API key: which servers it may reach, and whether a prod client stays off dev servers."));
  const rules = await api("/admin/v1/clients");
  const f = {
    id: h("input", { name: "clientId", required: true, placeholder: "cursor, key:ci-bot" }),
    servers: h("input", { name: "servers", placeholder: "any server" }),
    env: select("environment", [["", "any"], "dev", "prod"], ""),
    description: h("input", { name: "description", maxlength: 500 }),
  };
  const save = h("button", { type: "submit", class: "primary" }, "Save rule");
  const form = h("form", { class: "card", "aria-labelledby": "client-form" }, h("h3", { id: "client-form" }, "Add or replace a rule"),
    h("div", { class: "grid" }, field("Client id", f.id), field("Servers", f.servers, "Comma-separated server names; empty: no limit"),
      field("Environment", f.env, "prod keeps this client off dev servers"), field("Description", f.description)),
    h("div", { class: "actions" }, save));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    save.disabled = true;
    const id = f.id.value.trim();
    try {
      await api("/admin/v1/clients/" + encodeURIComponent(id), { method: "PUT", json: {
        servers: f.servers.value.trim() ? list(f.servers.value) : null, environment: f.env.value || null, description: f.description.value.trim() } });
      await again(view, renderClients, "Rule for " + id + " saved");
    } catch (error) { fail(error); } finally { save.disabled = false; }
  });
  view.append(form, h("h3", {}, "Rules (" + rules.length + ")"));
  view.append(rules.length ? table("Client rules", ["Client", "Servers", "Environment", "Description", ""], rules.map(c => [
    h("code", {}, c.clientId), c.servers === null ? "any" : joined(c.servers), c.environment || "any", c.description,
    h("div", { class: "actions" },
      h("button", { type: "button", "aria-label": "Edit rule for " + c.clientId, onclick: () => {
        f.id.value = c.clientId; f.servers.value = c.servers ? c.servers.join(", ") : ""; f.env.value = c.environment || ""; f.description.value = c.description;
        f.id.focus();
      } }, "Edit"),
      h("button", { type: "button", "aria-label": "Delete rule for " + c.clientId, onclick: async () => {
        const { ok } = await confirmDialog("Delete the rule for " + c.clientId + "?", "The client is then limited only by its users' own access.", { confirm: "Delete", danger: true });
        if (!ok) return;
        try { await api("/admin/v1/clients/" + encodeURIComponent(c.clientId), { method: "DELETE" }); await again(view, renderClients, "Rule for " + c.clientId + " deleted"); } catch (error) { fail(error); }
      } }, "Delete")),
  ]), "clients") : el("p", "No client rules: every client may reach what its user may.", "empty"));
}
