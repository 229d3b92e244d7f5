// Audit: search every gateway list and call (by user, server, tool, decision, outcome, time), page through
// it, download it as CSV, and see the time saved per week as a chart.
import { api, badge, download, el, fail, field, h, heading, json, num, select, table, uid, when } from "/ui/core.js";

const FIELDS = [["subject", "User"], ["server", "Server"], ["tool", "Tool"], ["decision", "Decision"], ["outcome", "Outcome"]];
const OUTCOMES = ["ok", "error", "denied", "refused", "withheld", "awaiting_approval", "rejected"];
const DECISIONS = ["allowed", "denied", "withheld", "awaiting-user"];
const state = { filters: {}, cursors: [null] };

function isoOrNull(local) {
  if (!local) return null;
  const d = new Date(local);
  return isNaN(d) ? null : d.toISOString();
}

function query(filters) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
  return q;
}

export async function render(view) {
  view.append(...heading("Audit log", "Every list and call through the gateway, newest first. Arguments are redacted as stored."));
  const inputs = {};
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search the audit log" });
  for (const [key, label] of FIELDS) {
    const listId = uid("dl");
    inputs[key] = h("input", { name: key, value: state.filters[key] || "", list: key === "outcome" || key === "decision" ? listId : null });
    form.append(field(label, inputs[key]));
    if (key === "outcome" || key === "decision") {
      form.append(h("datalist", { id: listId }, (key === "outcome" ? OUTCOMES : DECISIONS).map(v => h("option", { value: v }))));
    }
  }
  inputs.kind = select("kind", [["", "any"], "call", "list", "prompt", "resource", "integrity"], state.filters.kind || "");
  inputs.since = h("input", { type: "datetime-local", name: "since", value: state.filters.sinceLocal || "" });
  inputs.until = h("input", { type: "datetime-local", name: "until", value: state.filters.untilLocal || "" });
  form.append(field("Kind", inputs.kind), field("From", inputs.since), field("Until", inputs.until));
  const searchButton = h("button", { type: "submit", class: "primary" }, "Search");
  const csvButton = h("button", { type: "button" }, "Download CSV");
  form.append(h("div", { class: "actions" }, searchButton, csvButton));
  const results = h("div", { "aria-live": "polite" });
  const chart = h("section", { "aria-labelledby": "saved-heading" });
  view.append(form, results, chart);

  const current = () => {
    const f = {};
    for (const key of ["subject", "server", "tool", "decision", "outcome", "kind"]) f[key] = inputs[key].value.trim();
    f.since = isoOrNull(inputs.since.value);
    f.until = isoOrNull(inputs.until.value);
    state.filters = Object.assign({}, f, { sinceLocal: inputs.since.value, untilLocal: inputs.until.value });
    return f;
  };

  let latest = 0;  // a slower, older answer never replaces a newer search's
  const showPage = async index => {
    const mine = ++latest;
    const f = current();
    const q = query(f);
    q.set("limit", "50");
    if (state.cursors[index]) q.set("cursor", state.cursors[index]);
    const page = await api("/admin/v1/audit?" + q);
    if (mine !== latest) return;
    state.cursors[index + 1] = page.nextCursor;
    const prev = h("button", { type: "button", disabled: index === 0, onclick: () => showPage(index - 1).catch(fail) }, "Newer");
    const next = h("button", { type: "button", disabled: !page.nextCursor, onclick: () => showPage(index + 1).catch(fail) }, "Older");
    results.replaceChildren(
      el("p", page.items.length ? "Page " + (index + 1) + ": " + page.items.length + " events" + (page.nextCursor ? " (more on the next page)" : "") : "No events match.", "muted"),
      table("Audit events", ["When", "User", "Kind", "Server / tool", "Decision", "Outcome", "Latency", "Arguments"], page.items.map(e => [
        when(e.at),
        h("div", {}, e.subject, e.clientId ? el("div", "via " + e.clientId + (e.originClientId ? " ← " + e.originClientId : ""), "muted") : null),
        e.kind,
        e.server ? h("code", {}, e.server + (e.tool ? " / " + e.tool : "")) : "—",
        h("div", {}, e.decision, e.rule ? el("div", e.rule, "muted") : null),
        h("div", {}, badge(e.outcome, e.outcome === "ok" ? "up" : e.outcome === "error" || e.outcome === "denied" ? "down" : ""),
          e.error ? el("div", e.error, "muted") : null),
        h("div", {}, num(e.latencyMs, 1) + " ms", e.traceId ? h("div", { class: "muted hash", title: "trace " + e.traceId }, "trace " + e.traceId.slice(0, 12) + "…") : null),
        e.arguments ? h("details", {}, h("summary", {}, "arguments"), json(e.arguments)) : "—",
      ]), "audit"),
      h("div", { class: "actions pager" }, prev, next));
  };

  form.addEventListener("submit", async event => {
    event.preventDefault();
    state.cursors = [null];
    searchButton.disabled = true;
    try { await showPage(0); } catch (error) { fail(error); } finally { searchButton.disabled = false; }
  });
  csvButton.addEventListener("click", async () => {
    csvButton.disabled = true;
    try { await download("/admin/v1/audit.csv?" + query(current()), "bastion-audit.csv"); } catch (error) { fail(error); } finally { csvButton.disabled = false; }
  });
  await showPage(0);
  await renderTimeSaved(chart);
}

// -- time saved per week ----------------------------------------------------------------------------------

const PALETTE = ["#1f5fbf", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777"];

export async function renderTimeSaved(holder, by = "server") {
  holder.replaceChildren();
  const rows = await api("/admin/v1/reports/time-saved?by=week");
  const groupSelect = select("group", [["server", "server"], ["tool", "tool"]], by);
  groupSelect.addEventListener("change", () => renderTimeSaved(holder, groupSelect.value).catch(fail));
  holder.append(h("h3", { id: "saved-heading" }, "Time saved per week"),
    el("p", "Minutes saved by successful calls, from each tool's owner-estimated minutes per call.", "muted"),
    h("div", { class: "filters" }, field("Per", groupSelect)));
  if (!rows.length) { holder.append(el("p", "No successful calls with a time-saved estimate yet.", "empty")); return; }
  const weeks = [...new Set(rows.map(r => r.week))].sort();
  const key = r => by === "tool" ? r.server + " / " + r.tool : r.server;
  const totals = new Map();
  for (const r of rows) totals.set(key(r), (totals.get(key(r)) || 0) + r.minutesSaved);
  const series = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
  const top = series.slice(0, PALETTE.length - 1);
  const label = s => top.includes(s) ? s : "other";
  const names = series.length > top.length ? [...top, "other"] : top;
  const cell = new Map();
  for (const r of rows) {
    const k = r.week + "|" + label(key(r));
    cell.set(k, (cell.get(k) || 0) + r.minutesSaved);
  }
  const weekTotal = w => names.reduce((n, s) => n + (cell.get(w + "|" + s) || 0), 0);
  const max = Math.max(...weeks.map(weekTotal), 1);
  const W = 640, H = 240, left = 48, bottom = 28, top0 = 8, band = (W - left - 8) / weeks.length, bar = Math.max(4, band * 0.7);
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Minutes saved per week, stacked by " + by + "; the table below has the figures.");
  svg.classList.add("chart");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (let i = 0; i <= 4; i++) {
    const y = top0 + (H - bottom - top0) * (1 - i / 4);
    add("line", { x1: left, x2: W - 4, y1: y, y2: y, class: "grid" });
    add("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, num(max * i / 4));
  }
  weeks.forEach((w, i) => {
    let y = H - bottom;
    const x = left + i * band + (band - bar) / 2;
    names.forEach((s, j) => {
      const v = cell.get(w + "|" + s) || 0;
      if (!v) return;
      const hgt = (H - bottom - top0) * v / max;
      y -= hgt;
      const rect = add("rect", { x, y, width: bar, height: Math.max(hgt, 0.5), fill: PALETTE[j % PALETTE.length] });
      const title = document.createElementNS(svgNs, "title");
      title.textContent = w + " · " + s + ": " + num(v, 1) + " min";
      rect.append(title);
    });
    if (weeks.length <= 16 || i % Math.ceil(weeks.length / 16) === 0) {
      add("text", { x: x + bar / 2, y: H - bottom + 16, "text-anchor": "middle", class: "axis" }, w.slice(5));
    }
  });
  const legend = h("ul", { class: "legend" }, names.map((s, j) => h("li", {},
    h("span", { class: "swatch", "data-color": PALETTE[j % PALETTE.length] }), s + " — " + num(s === "other" ? otherTotal(totals, top) : totals.get(s), 1) + " min")));
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
  holder.append(svg, legend, h("details", {}, h("summary", {}, "The figures"),
    table("Minutes saved per week and " + by, ["Week", by === "tool" ? "Server / tool" : "Server", "Calls", "Minutes saved"],
      aggregate(rows, key).map(r => [r.week, r.key, num(r.calls), num(r.minutes, 1)]))));
}

function otherTotal(totals, top) {
  let n = 0;
  for (const [k, v] of totals) if (!top.includes(k)) n += v;
  return n;
}

function aggregate(rows, key) {
  const out = new Map();
  for (const r of rows) {
    const k = r.week + "|" + key(r);
    const o = out.get(k) || { week: r.week, key: key(r), calls: 0, minutes: 0 };
    o.calls += r.calls;
    o.minutes += r.minutesSaved;
    out.set(k, o);
  }
  return [...out.values()].sort((a, b) => a.week.localeCompare(b.week) || b.minutes - a.minutes);
}
