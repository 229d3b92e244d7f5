// Shared by every page of the console: the API client, the signed-in user, small DOM builders.
// Everything user-supplied is rendered with textContent (or attributes), never parsed as HTML.

export const META = "dev.bastion/registry";
export const OFFICIAL = "io.modelcontextprotocol.registry/official";

// -- DOM --------------------------------------------------------------------------------------------------

export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

// h("button", {class: "primary", onclick: fn, "aria-label": "…"}, "text", childNode, …)
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else if (key === "checked") node.checked = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let ids = 0;
export function uid(prefix) { ids += 1; return prefix + "-" + ids; }

// A labelled control: <div class="field"><label for=…>Label</label> control <small>hint</small></div>
export function field(label, control, hint) {
  if (!control.id) control.id = uid("f");
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  if (hint) {
    const small = h("small", { id: control.id + "-hint", class: "muted" }, hint);
    control.setAttribute("aria-describedby", small.id);
    wrap.append(small);
  }
  return wrap;
}

export function select(name, options, value) {
  const node = h("select", { name });
  for (const option of options) {
    const [v, label] = Array.isArray(option) ? option : [option, option];
    node.append(h("option", { value: v, selected: v === value ? true : null }, label));
  }
  return node;
}

// A table with a caption (screen readers announce it) inside a horizontally scrollable wrapper.
export function table(caption, headers, rows, cls) {
  const t = h("table", { class: cls || null });
  if (caption) t.append(h("caption", {}, caption));
  t.append(h("thead", {}, h("tr", {}, headers.map(x => h("th", { scope: "col" }, x)))));
  const body = h("tbody");
  for (const row of rows) body.append(row instanceof Node ? row : h("tr", {}, row.map(cell => h("td", {}, cell))));
  t.append(body);
  return h("div", { class: "table-wrap" }, t);
}

export function badge(text, cls) { return el("span", text, "badge " + (cls || "")); }

export function json(value) { return el("pre", JSON.stringify(value, null, 2), "json"); }

// -- formatting ------------------------------------------------------------------------------------------

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function num(n, digits = 0) {
  return typeof n === "number" ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : "—";
}

export function plural(n, word) { return num(n) + " " + word + (n === 1 ? "" : "s"); }

// -- the API ---------------------------------------------------------------------------------------------

export function token() { return sessionStorage.getItem("bastion-token") || ""; }

export class ApiError extends Error {
  constructor(message, status, body) { super(message); this.status = status; this.body = body; }
}

// An error response as one line: `{error, field, errors: [{field, reason}]}` (or OAuth's error_description).
export function errorText(body, response) {
  if (body && typeof body === "object") {
    const first = Array.isArray(body.errors) && body.errors.length ? body.errors[0] : null;
    const detail = first && first.reason ? " (" + (first.field ? first.field + ": " : "") + first.reason + ")" : "";
    const main = body.error_description || body.message || body.error;
    if (main) return String(main) + detail;
  }
  return response.status + " " + response.statusText;
}

// api(path, {method, json}) → parsed JSON (null for 204); throws ApiError with the server's message.
export async function api(path, options = {}) {
  const headers = Object.assign({ "Authorization": "Bearer " + token() }, options.headers || {});
  const init = Object.assign({}, options, { headers });
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(options.json);
    delete init.json;
  }
  const response = await fetch(path, init);
  const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(errorText(body, response), response.status, body);
  return body;
}

// Every page of a cursor-paginated list (`{items, nextCursor}`), up to `max` items.
export async function allPages(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(path + sep + "limit=100" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}

// A file the API serves (CSV), downloaded with the token (a plain link could not send it).
export async function download(path, filename) {
  const response = await fetch(path, { headers: { "Authorization": "Bearer " + token() } });
  if (!response.ok) {
    const body = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
    throw new ApiError(errorText(body, response), response.status, body);
  }
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// -- who is signed in ------------------------------------------------------------------------------------

export const user = { me: null };

export function isAdmin() { return Boolean(user.me && user.me.roles.includes("admin")); }
export function isReviewer() { return Boolean(user.me && (user.me.roles.includes("reviewer") || isAdmin())); }

// -- page status and dialogs -----------------------------------------------------------------------------

export function setStatus(message, kind) {
  const node = document.getElementById("status");
  node.textContent = message || "";
  node.className = kind === "ok" ? "ok" : "";
}

export function fail(error) { setStatus(error && error.message ? error.message : String(error)); }

// A modal confirmation with an optional note: resolves {ok, note}. Escape or Cancel → ok false.
export function confirmDialog(title, lines, { confirm = "Confirm", note = false, danger = false } = {}) {
  return new Promise(resolve => {
    const noteInput = note ? h("textarea", { rows: 2, maxlength: 1000 }) : null;
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": uid("dlg") });
    const heading = h("h2", { id: dialog.getAttribute("aria-labelledby") }, title);
    const ok = h("button", { type: "submit", class: danger ? "danger" : "primary", value: "ok" }, confirm);
    const form = h("form", { method: "dialog" },
      heading,
      ...(Array.isArray(lines) ? lines : [lines]).map(line => line instanceof Node ? line : h("p", {}, line)),
      noteInput ? field("Note (optional)", noteInput) : null,
      h("div", { class: "actions" }, ok, h("button", { type: "submit", value: "cancel" }, "Cancel")));
    dialog.append(form);
    dialog.addEventListener("close", () => {
      resolve({ ok: dialog.returnValue === "ok", note: noteInput ? noteInput.value.trim() : "" });
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    (noteInput || ok).focus();
  });
}

// A page's heading plus an optional line under it; the router focuses the heading on navigation.
export function heading(text, sub) {
  const nodes = [h("h2", { tabindex: "-1", class: "page-title" }, text)];
  if (sub) nodes.push(h("p", { class: "muted lead" }, sub));
  return nodes;
}

export function link(href, text, attrs = {}) { return h("a", Object.assign({ href }, attrs), text); }

export function serverHref(name) { return "#/servers/" + encodeURIComponent(name); }

// Query parameters after the route in the hash: #/register?server=… → URLSearchParams.
export function hashQuery() { return new URLSearchParams(location.hash.split("?")[1] || ""); }

// A message for the page the user is sent to next (the router shows it after navigating).
export const pending = { flash: null };
export function flash(message) { pending.flash = message; }
