// Owners: register a server (paste a server.json, or fill a form) or add a version, and submit it for review.
// Submitting, deprecating and reinstating a version are on the server's page.
import {
  allPages, api, el, field, fail, flash, h, hashQuery, heading, isAdmin, select, serverHref, user,
} from "/ui/core.js";

const EXAMPLE_TOOLS = JSON.stringify([{
  name: "get_metrics",
  description: "Spend and clicks of one campaign for a date range.",
  inputSchema: { type: "object", properties: { campaign_id: { type: "string" } }, required: ["campaign_id"] },
  annotations: { readOnlyHint: true, destructiveHint: false },
}], null, 2);

const ITEM_KEYS = ["prompts", "resources", "resourceTemplates"];
const EXAMPLE_ITEMS = JSON.stringify({
  prompts: [{ name: "weekly_summary", description: "Summarise a campaign's week.", arguments: [{ name: "campaign_id", required: true }] }],
  resources: [{ name: "glossary", description: "Terms the team uses.", uri: "docs://insights/glossary", mimeType: "text/markdown" }],
  resourceTemplates: [{ name: "campaign", description: "One campaign, by id.", uriTemplate: "insights://campaigns/{id}" }],
});

// The optional prompts, resources and templates: a JSON object with those keys (empty: none).
function parseItems(textarea) {
  if (!textarea.value.trim()) return {};
  const value = parseJson(textarea, "Prompts, resources and templates");
  const unknown = value && typeof value === "object" && !Array.isArray(value)
    ? Object.keys(value).filter(k => !ITEM_KEYS.includes(k)) : null;
  if (unknown === null || unknown.length) {
    textarea.setAttribute("aria-invalid", "true");
    textarea.focus();
    throw new Error("Prompts, resources and templates must be a JSON object with the keys " + ITEM_KEYS.join(", ")
      + (unknown && unknown.length ? " (not " + unknown.slice(0, 3).join(", ") + ")" : ""));
  }
  return value;
}

async function teamOptions() {
  if (isAdmin()) return (await allPages("/admin/v1/teams", 500)).map(t => t.name);
  return user.me.teams;
}

function parseJson(textarea, what) {
  try { return JSON.parse(textarea.value); } catch (error) {
    textarea.setAttribute("aria-invalid", "true");
    textarea.focus();
    throw new Error(what + " is not valid JSON: " + error.message);
  }
}

export async function renderRegister(view) {
  const existing = hashQuery().get("server");
  view.append(...heading(existing ? "New version of " + existing : "Register a server",
    "Owners register their team's MCP servers here; reviewers approve each version before clients can use it."));
  const teams = await teamOptions();
  if (!teams.length && !existing) {
    view.append(el("p", "You belong to no team, so there is no team to register a server for. An admin adds you to a team (Teams page).", "empty"));
    return;
  }

  // -- paste a server.json ----------------------------------------------------------------------------
  const doc = h("textarea", { rows: 14, class: "code", spellcheck: "false", placeholder: "{ \"name\": \"com.example/…\", \"version\": \"1.0.0\", … }" });
  const pasteTeam = select("team", [["", "from the document's _meta (team)"], ...teams]);
  const pasteSubmit = h("input", { type: "checkbox", checked: true });
  const pasteButton = h("button", { type: "submit", class: "primary" }, "Import");
  const paste = h("form", { class: "card", "aria-labelledby": "paste-heading" },
    h("h3", { id: "paste-heading" }, "Paste a server.json"),
    field("server.json", doc, "The MCP registry's server.json (schema 2025-12-11); tools go in _meta[\"dev.bastion/registry\"].tools, as in examples/server.json, and prompts, resources and resourceTemplates next to them."),
    field("Owning team (new servers)", pasteTeam),
    h("label", { class: "check" }, pasteSubmit, " Submit the version for review"),
    h("div", { class: "actions" }, pasteButton));
  paste.addEventListener("submit", async event => {
    event.preventDefault();
    doc.removeAttribute("aria-invalid");
    pasteButton.disabled = true;
    try {
      const body = parseJson(doc, "The server.json");
      const query = new URLSearchParams();
      if (pasteTeam.value) query.set("team", pasteTeam.value);
      query.set("submit", pasteSubmit.checked ? "true" : "false");
      const out = await api("/admin/v1/import?" + query, { method: "POST", json: body });
      flash(out.server + " " + out.version + " imported: " + out.status.replace(/_/g, " "));
      location.hash = serverHref(out.server);
    } catch (error) { fail(error); } finally { pasteButton.disabled = false; }
  });

  // -- or fill a form --------------------------------------------------------------------------------
  const f = {
    name: h("input", { name: "name", required: true, placeholder: "com.example/insights", value: existing || "", readonly: existing ? true : null }),
    title: h("input", { name: "title", maxlength: 100 }),
    description: h("input", { name: "description", maxlength: 100, required: !existing }),
    team: select("team", teams),
    environment: select("environment", ["dev", "prod"], "dev"),
    classification: select("classification", ["public", "internal", "confidential", "restricted"], "internal"),
    transport: select("transport", [["streamable-http", "Streamable HTTP (remote)"], ["builtin", "builtin (in-process)"]]),
    endpoint: h("input", { name: "endpoint", type: "url", placeholder: "https://insights.example.com/mcp" }),
    groups: h("input", { name: "allowedGroups", placeholder: "ads-eng, analysts" }),
    version: h("input", { name: "version", required: true, value: "1.0.0" }),
    tools: h("textarea", { name: "tools", rows: 12, class: "code", spellcheck: "false" }),
    items: h("textarea", { name: "items", rows: 6, class: "code", spellcheck: "false", placeholder: EXAMPLE_ITEMS }),
    submit: h("input", { type: "checkbox", checked: true }),
  };
  f.tools.value = EXAMPLE_TOOLS;
  const formButton = h("button", { type: "submit", class: "primary" }, existing ? "Create version" : "Register");
  const serverFields = existing ? [] : [
    field("Title", f.title), field("Description", f.description, "One line, up to 100 characters."),
    field("Owning team", f.team), field("Environment", f.environment), field("Classification", f.classification),
    field("Transport", f.transport), field("Endpoint", f.endpoint, "For Streamable HTTP servers: the upstream's MCP URL."),
    field("Allowed groups", f.groups, "Comma-separated; empty: anyone whose clearance covers the classification."),
  ];
  const form = h("form", { class: "card", "aria-labelledby": "form-heading" },
    h("h3", { id: "form-heading" }, existing ? "Add a version" : "Or fill in a form"),
    field("Server name", f.name, "namespace/name, e.g. com.example/insights (permanent)."),
    ...serverFields,
    field("Version", f.version, "Semantic version, e.g. 1.0.0"),
    field("Tools (JSON array)", f.tools, "Each: name, description, inputSchema, annotations."),
    field("Prompts, resources and templates (JSON, optional)", f.items,
      "An object with prompts (name, description, arguments), resources (name, description, uri, mimeType) and resourceTemplates (name, description, uriTemplate); names as for tools."),
    h("label", { class: "check" }, f.submit, " Submit the version for review"),
    h("div", { class: "actions" }, formButton));
  form.addEventListener("submit", async event => {
    event.preventDefault();
    f.tools.removeAttribute("aria-invalid");
    f.items.removeAttribute("aria-invalid");
    formButton.disabled = true;
    const name = f.name.value.trim();
    try {
      const tools = parseJson(f.tools, "Tools");
      const items = parseItems(f.items);
      if (!existing) {
        await api("/admin/v1/servers", { method: "POST", json: {
          name, title: f.title.value.trim() || null, description: f.description.value.trim(), team: f.team.value,
          environment: f.environment.value, classification: f.classification.value, transport: f.transport.value,
          endpoint: f.endpoint.value.trim() || null,
          allowedGroups: f.groups.value.split(",").map(g => g.trim()).filter(Boolean),
        } });
      }
      const version = f.version.value.trim();
      await api("/admin/v1/servers/" + name + "/versions", { method: "POST", json: Object.assign({ version, tools }, items) });
      let status = "draft";
      if (f.submit.checked) {
        status = (await api("/admin/v1/servers/" + name + "/versions/" + encodeURIComponent(version) + "/status",
                            { method: "POST", json: { status: "in_review" } })).status;
      }
      flash(name + " " + version + " created: " + status.replace(/_/g, " "));
      location.hash = serverHref(name);
    } catch (error) { fail(error); } finally { formButton.disabled = false; }
  });
  view.append(...(existing ? [form] : [paste, form]));
}
