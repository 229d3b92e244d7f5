// The chat panel: the agent over /v1/chat. A turn is a POST whose response is a server-sent event stream,
// read from the fetch() body (EventSource cannot POST). Proposed calls that need a decision are cards.
import { api, el, token } from "/ui/core.js";

const chat = {
  id: null,            // the open session
  llm: null,           // is an LLM configured (null: not known yet)
  busy: false,         // a turn is streaming
  generation: 0,       // bumped when another session opens: events of an older stream are dropped
  abort: null,         // AbortController of the running stream
  text: null,          // the assistant bubble text deltas go to
  tools: new Map(),    // tool-call id → its line
  cards: new Map(),    // proposal id → {node, kind, state, actions, note}
  group: null,         // the newest group of proposal cards
};

function byId(id) { return document.getElementById(id); }
function chatState(message) { byId("chat-state").textContent = message || ""; }
function compact(value, limit = 160) {
  let text;
  try { text = JSON.stringify(value); } catch (_) { text = String(value); }
  text = text === undefined ? "" : text;
  return text.length > limit ? text.slice(0, limit) + "…" : text;
}
function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

function scrollLog() { const log = byId("chat-log"); log.scrollTop = log.scrollHeight; }
function logAppend(node) { byId("chat-log").append(node); scrollLog(); return node; }
function breakText() { chat.text = null; }

function addUser(text) {
  breakText();
  const node = el("div", null, "chat-msg chat-user");
  node.append(el("span", "You", "chat-who"), el("div", text, "chat-body"));
  return logAppend(node);
}

function addAssistantText(delta) {
  if (!chat.text) {
    const node = el("div", null, "chat-msg chat-assistant");
    chat.text = el("div", "", "chat-body");
    node.append(el("span", "Agent", "chat-who"), chat.text);
    logAppend(node);
  }
  chat.text.textContent += delta;
  scrollLog();
}

function addNotice(code, message) {
  breakText();
  const node = el("div", null, "chat-notice-line");
  node.append(el("strong", "Notice" + (code ? " · " + code : "")), el("span", " " + (message || "")));
  return logAppend(node);
}

const STATUS_CLASS = {
  ok: "up", running: "unknown", approved: "unknown", denied: "down", error: "down", rejected: "down",
  not_run: "down", unavailable: "down", awaiting_user: "pending", awaiting_approval: "pending",
};
const STATUS_TEXT = {
  running: "running…", approved: "approved, running…", awaiting_user: "needs your decision",
  awaiting_approval: "waiting for an approver", not_run: "not run",
};

function toolLine(id, tool, args) {
  breakText();
  let line = chat.tools.get(id);
  if (line) return line;
  const node = el("div", null, "chat-tool");
  const head = el("div", null, "chat-tool-head");
  const status = el("span", "", "badge");
  const latency = el("span", "", "muted");
  const rule = el("span", "", "chat-rule");
  head.append(el("span", "Tool", "chat-who"), el("code", tool, "chat-tool-name"), status, latency, rule);
  const argsLine = el("div", args === undefined || args === null ? "" : compact(args), "muted chat-args");
  const detail = el("div", "", "chat-detail");
  node.append(head, argsLine, detail);
  line = { node, status, latency, rule, detail };
  chat.tools.set(id, line);
  setToolStatus(line, "running");
  logAppend(node);
  return line;
}

function setToolStatus(line, status) {
  line.status.textContent = STATUS_TEXT[status] || status;
  line.status.className = "badge chat-status " + (STATUS_CLASS[status] || "unknown");
  line.node.dataset.status = status;
}

function toolResult(ev) {
  const line = chat.tools.get(ev.id) || toolLine(ev.id, ev.tool, null);
  setToolStatus(line, ev.status);
  line.latency.textContent = typeof ev.latency_ms === "number" ? ev.latency_ms.toFixed(1) + " ms" : "";
  line.rule.textContent = ev.rule ? "rule: " + ev.rule : "";
  const extra = ev.approval_id && ev.status === "awaiting_approval" ? "approval " + ev.approval_id : "";
  line.detail.textContent = ev.detail || extra;
  breakText();
  scrollLog();
}

// -- proposal cards -------------------------------------------------------------------------------------

function showProposals(proposals) {
  breakText();
  if (chat.group && chat.group.bulk) chat.group.bulk.remove();
  const node = el("div", null, "chat-cards");
  const group = { node, bulk: null };
  const confirm = proposals.filter(p => p.kind === "confirm");
  node.append(el("p", proposals.length === 1 ? "A call is waiting for a decision:" :
                       proposals.length + " calls are waiting for a decision:", "chat-cards-title"));
  if (confirm.length > 1) {
    const bulk = el("div", null, "chat-actions");
    const all = el("button", "Approve all (" + confirm.length + ")", "primary");
    all.type = "button";
    all.addEventListener("click", () => decide({ all: "approve" }));
    const none = el("button", "Reject all");
    none.type = "button";
    none.addEventListener("click", () => decide({ all: "reject" }));
    bulk.append(all, none);
    node.append(bulk);
    group.bulk = bulk;
  }
  for (const p of proposals) {
    const known = chat.cards.get(p.id);
    if (known && known.state === "open") {
      if (known.kind === "parked") known.note.textContent = "Still waiting for an approver (checked " + new Date().toLocaleTimeString() + ").";
      node.append(known.node);   // moves it under the newest group
      continue;
    }
    node.append(card(p).node);
  }
  const previous = chat.group;
  chat.group = group;
  logAppend(node);
  syncCards();
  if (previous && !previous.node.querySelector(".chat-card")) previous.node.remove();
}

function card(p) {
  const headingId = "card-" + p.id.replace(/[^A-Za-z0-9_-]/g, "");
  const node = el("article", null, "chat-card " + p.kind);
  node.setAttribute("aria-labelledby", headingId);
  const heading = el("h4", (p.kind === "confirm" ? "Run " : "Waiting for an approver: ") + p.tool + (p.kind === "confirm" ? "?" : ""));
  heading.id = headingId;
  node.append(heading, el("div", "Arguments", "muted"), el("pre", JSON.stringify(p.arguments || {}, null, 2), "chat-json"));
  if (p.prompt) node.append(el("pre", p.prompt, "chat-prompt"));
  const actions = el("div", null, "chat-actions");
  const note = el("p", "", "chat-card-note");
  if (p.kind === "confirm") {
    for (const [label, verdict, cls] of [["Approve", "approve", "primary"], ["Reject", "reject", ""]]) {
      const button = el("button", label, cls);
      button.type = "button";
      button.setAttribute("aria-label", label + " " + p.tool);
      button.addEventListener("click", () => decide({ decisions: { [p.id]: verdict } }));
      actions.append(button);
    }
  } else {
    note.textContent = "Another approver decides" + (p.approval_id ? " (approval id " + p.approval_id + ")" : "") +
                       "; the call runs here once it is approved.";
    if (p.approval_id) {
      const id = el("code", p.approval_id, "chat-approval-id");
      actions.append(el("span", "Approval id: ", "muted"), id);
    }
    const again = el("button", "Check again");
    again.type = "button";
    again.setAttribute("aria-label", "Check again whether " + p.tool + " was approved");
    again.addEventListener("click", () => decide({ decisions: {} }));
    actions.append(again);
  }
  node.append(actions, note);
  const entry = { node, kind: p.kind, state: "open", actions, note };
  chat.cards.set(p.id, entry);
  return entry;
}

function closeCard(id, text, cls) {
  const entry = chat.cards.get(id);
  if (!entry || entry.state !== "open") return;
  entry.state = "closed";
  entry.actions.remove();
  entry.note.textContent = text;
  entry.node.classList.add("closed", cls || "closed");
}

function syncCards() {
  for (const button of byId("chat-log").querySelectorAll(".chat-cards button")) button.disabled = chat.busy;
}

function decide(body) {
  if (chat.busy || !chat.id) return;
  runTurn("/decisions", body);
}

// -- the event stream -----------------------------------------------------------------------------------

function parseBlock(block) {
  let name = "";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  let payload;
  try { payload = JSON.parse(data.join("\n")); } catch (_) { return null; }
  if (!payload || typeof payload !== "object") return null;
  if (name) payload.type = name;
  return payload;
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    buffer = buffer.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = parseBlock(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
      if (event) onEvent(event);
    }
    if (done) break;
  }
  const rest = buffer.trim() ? parseBlock(buffer) : null;
  if (rest) onEvent(rest);
}

function handleEvent(ev) {
  switch (ev.type) {
    case "session": setLlm(ev.llm); break;
    case "text": addAssistantText(ev.delta || ""); break;
    case "tool_call": toolLine(ev.id, ev.tool, ev.arguments); break;
    case "tool_result": toolResult(ev); break;
    case "approval_required": showProposals(ev.proposals || []); break;
    case "decision": {
      closeCard(ev.id, ev.approved ? "Approved." : "Rejected.", ev.approved ? "approved" : "rejected");
      const line = chat.tools.get(ev.id);
      if (line) setToolStatus(line, ev.approved ? "approved" : "rejected");
      break;
    }
    case "notice": addNotice(ev.code, ev.message); break;
    case "done": finishTurn(ev); break;
    default: break;
  }
}

function finishTurn(ev) {
  breakText();
  const pending = new Set(ev.pending || []);
  for (const [id, entry] of chat.cards) {
    if (entry.state === "open" && !pending.has(id)) closeCard(id, "No longer waiting: it was not decided here.", "lapsed");
  }
  const status = {
    complete: "Done · " + plural(ev.tokens || 0, "token") + " · " + plural(ev.tool_calls || 0, "tool call") + ".",
    awaiting_approval: "Waiting for a decision on the proposed call" + (pending.size === 1 ? "" : "s") + ".",
    limit: "Stopped at a limit (see the notice).",
    error: "The turn ended with an error.",
  }[ev.status] || ev.status;
  chatState(status);
  byId("chat-log").dataset.turn = ev.status;
  loadChatSessions();
}

function setBusy(busy) {
  chat.busy = busy;
  byId("chat-send").disabled = busy;
  byId("chat-log").setAttribute("aria-busy", busy ? "true" : "false");
  if (busy) chatState("Working…");
  syncCards();
  if (!busy) {
    const active = document.activeElement;
    if (!active || active === document.body || active.disabled) {
      const first = byId("chat-log").querySelector(".chat-cards button:not([disabled])");
      (first || byId("chat-input")).focus();
    }
  }
}

async function runTurn(path, body) {
  if (chat.busy) return;
  const generation = chat.generation;
  const controller = new AbortController();
  chat.abort = controller;
  setBusy(true);
  breakText();
  let finished = false;
  try {
    const response = await fetch("/v1/chat/sessions/" + encodeURIComponent(chat.id) + path, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token(), "content-type": "application/json", "accept": "text/event-stream" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      let payload = null;
      try { payload = await response.json(); } catch (_) { /* not JSON */ }
      addNotice("error", errorText(payload, response));
      finished = true;
      return;
    }
    await readEvents(response, event => {
      if (generation !== chat.generation) return;
      if (event.type === "done") finished = true;
      handleEvent(event);
    });
  } catch (error) {
    if (error.name === "AbortError") return;
    if (generation === chat.generation) addNotice("error", "The request failed: " + error.message);
  } finally {
    if (generation === chat.generation) {
      chat.abort = null;
      if (!finished) chatState("The stream ended early; reopen the session to see what was saved.");
      setBusy(false);
    }
  }
}

// -- sessions ---------------------------------------------------------------------------------------------

function setLlm(llm) {
  chat.llm = llm;
  byId("chat-no-llm").hidden = llm !== false;
}

function resetLog() {
  byId("chat-log").replaceChildren();
  delete byId("chat-log").dataset.turn;
  chat.tools = new Map();
  chat.cards = new Map();
  chat.group = null;
  breakText();
}

function closeChat() {
  if (chat.abort) chat.abort.abort();
  chat.generation += 1;
  chat.id = null;
  setBusy(false);
  resetLog();
  setLlm(null);
  chatState("");
  byId("chat-current").textContent = "No session open: send a message to start one.";
  byId("chat-sessions").replaceChildren();
}

function describeSession(s) {
  const scope = s.scope === null || s.scope === undefined ? "all servers you may use"
    : s.scope.length ? "scope: " + s.scope.join(", ") : "scope: no servers";
  return "Session: " + (s.title || "(untitled)") + " · " + scope + " · " + s.status.replace(/_/g, " ");
}

async function loadChatSessions() {
  if (!token()) return;
  let list;
  try { list = await api("/v1/chat/sessions?limit=50"); } catch (error) { chatState("Sessions: " + error.message); return; }
  const ul = byId("chat-sessions");
  ul.replaceChildren();
  if (!list.length) ul.append(el("li", "No sessions yet.", "muted"));
  for (const s of list) {
    const li = el("li");
    const button = el("button", null, "chat-session");
    button.type = "button";
    button.dataset.id = s.id;
    button.append(el("span", s.title || "(untitled)", "chat-session-title"),
                  el("span", s.status.replace(/_/g, " ") + " · " + new Date(s.updatedAt).toLocaleString(), "muted"));
    if (s.id === chat.id) {
      button.setAttribute("aria-current", "true");
      byId("chat-current").textContent = describeSession(s);
    }
    button.addEventListener("click", () => openSession(s.id));
    li.append(button);
    ul.append(li);
  }
}

function unfence(content) {
  return String(content || "").split("\n").filter(l => !/^\[(end of )?tool result /.test(l)).join("\n");
}

function renderHistory(detail) {
  const used = new Set();
  const waiting = r => r.status === "awaiting_user" || r.status === "awaiting_approval";
  const recordFor = name => {
    const record = detail.toolCalls.find(r => !used.has(r.id) && r.tool === name && !waiting(r));
    if (record) used.add(record.id);
    return record;
  };
  for (const m of detail.messages) {
    const b = m.body || {};
    if (b.role === "user") addUser(b.content);
    else if (b.role === "assistant") {
      breakText();
      if (b.content) { addAssistantText(b.content); breakText(); }
    } else if (b.role === "tool") {
      const r = recordFor(b.name);
      const id = r ? r.id : "message-" + m.seq;
      toolLine(id, b.name, r ? r.arguments : null);
      toolResult({ id, tool: b.name, status: b.status || (r && r.status) || "ok", latency_ms: r ? r.latencyMs : null,
                   rule: r ? r.rule : null, detail: r ? r.detail : unfence(b.content) });
    } else if (b.role === "notice") addNotice(b.code, b.content);
  }
  const open = detail.toolCalls.filter(waiting);
  for (const r of open) {
    toolLine(r.id, r.tool, r.arguments);
    toolResult({ id: r.id, tool: r.tool, status: r.status, latency_ms: r.latencyMs, approval_id: r.approvalId });
  }
  if (open.length) {
    showProposals(open.map(r => ({ id: r.id, tool: r.tool, arguments: r.arguments, prompt: r.detail,
                                   kind: r.status === "awaiting_user" ? "confirm" : "parked", approval_id: r.approvalId })));
    chatState("Waiting for a decision on the proposed call" + (open.length === 1 ? "" : "s") + ".");
  }
}

async function openSession(id) {
  if (chat.abort) chat.abort.abort();
  chat.generation += 1;
  const generation = chat.generation;
  setBusy(false);
  let detail;
  try { detail = await api("/v1/chat/sessions/" + encodeURIComponent(id)); } catch (error) { chatState(error.message); return false; }
  if (generation !== chat.generation) return false;
  chat.id = detail.id;
  resetLog();
  chatState("");
  setLlm(detail.llm);
  byId("chat-current").textContent = describeSession(detail);
  renderHistory(detail);
  for (const b of byId("chat-sessions").querySelectorAll("button.chat-session")) {
    if (b.dataset.id === chat.id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  return true;
}

async function newSession() {
  const scope = byId("chat-scope").value.split(",").map(s => s.trim()).filter(Boolean);
  let created;
  try {
    created = await api("/v1/chat/sessions", { method: "POST", headers: { "content-type": "application/json" },
                                               body: JSON.stringify({ title: "", scope: scope.length ? scope : null }) });
  } catch (error) { chatState("New session: " + error.message); return false; }
  const opened = await openSession(created.id);
  await loadChatSessions();
  return opened;
}

// `/call server__tool {json}`: a direct tool call (works without an LLM).
function parseCall(text) {
  const match = /^\/call\s+(\S+)\s*([\s\S]*)$/.exec(text);
  if (!match || !match[1].includes("__")) return { error: "Usage: /call server__tool {\"arg\": \"value\"}" };
  let args = {};
  if (match[2].trim()) {
    try { args = JSON.parse(match[2]); } catch (error) { return { error: "The arguments are not valid JSON: " + error.message }; }
  }
  if (!args || typeof args !== "object" || Array.isArray(args)) return { error: "The arguments must be a JSON object." };
  return { call: { tool: match[1], arguments: args } };
}

async function sendMessage() {
  const input = byId("chat-input");
  const text = input.value.trim();
  if (!text || chat.busy) return;
  if (!token()) { chatState("Paste a token above first."); return; }
  let body;
  if (/^\/call(\s|$)/.test(text)) {
    const parsed = parseCall(text);
    if (parsed.error) { input.setAttribute("aria-invalid", "true"); chatState(parsed.error); return; }
    body = { call: parsed.call };
  } else body = { content: text };
  input.removeAttribute("aria-invalid");
  if (!chat.id && !(await newSession())) return;
  input.value = "";
  addUser(text);
  await runTurn("/messages", body);
}

byId("chat-new").addEventListener("submit", event => {
  event.preventDefault();
  if (!token()) { chatState("Paste a token above first."); return; }
  newSession().then(ok => { if (ok) byId("chat-input").focus(); });
});
byId("chat-sessions-refresh").addEventListener("click", loadChatSessions);
byId("chat-form").addEventListener("submit", event => { event.preventDefault(); sendMessage(); });
byId("chat-input").addEventListener("keydown", event => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    byId("chat-form").requestSubmit();
  }
});
byId("chat-input").addEventListener("input", () => byId("chat-input").removeAttribute("aria-invalid"));


export { closeChat, loadChatSessions };
