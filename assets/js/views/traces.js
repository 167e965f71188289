// Traces: the newest traces, filtered by agent, and a span waterfall for one trace.

import { get, enc } from "../api.js";
import { h, mount, errorBox, formatMs, pretty, statusPill, kv } from "../dom.js";

function unavailable(error) {
  if (error.status === 404 || error.status === 503) {
    return h("div", { class: "notice" }, "Tracing is not available on this node yet (", error.message, ").");
  }
  return errorBox(error);
}

function traceDuration(trace) {
  const spans = trace.spans || [];
  const root = spans.find((span) => !span.parent_span_id) || spans[0];
  return root ? root.duration_ms : null;
}

export async function render(main, route) {
  if (route.args[0]) return renderTrace(main, route.args[0]);
  const agent = route.params.get("agent") || "";
  let agents = [];
  try { agents = (await get("/v1/agents")).agents || []; } catch { /* the filter just lists fewer names */ }
  const filter = h("select", { id: "trace-agent", "aria-label": "Filter by agent",
    onchange: () => { location.hash = filter.value ? `#/traces?agent=${enc(filter.value)}` : "#/traces"; } },
    h("option", { value: "" }, "All agents"),
    agents.map((a) => h("option", { value: a.name, selected: a.name === agent }, a.name)));
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  mount(main, h("div", { class: "row spread" }, h("h1", {}, "Traces"),
    h("div", { class: "row" }, filter, h("button", { onclick: () => load() }, "Refresh"))), body);

  async function load() {
    try {
      const query = agent ? `?agent=${enc(agent)}&limit=50` : "?limit=50";
      const traces = (await get(`/v1/traces/${query}`)).traces || [];
      if (!traces.length) { mount(body, h("p", { class: "muted" }, "No traces yet. Run an agent to record one.")); return; }
      mount(body, h("div", { class: "table-wrap" }, h("table", { id: "trace-list" },
        h("thead", {}, h("tr", {}, h("th", {}, "Trace"), h("th", {}, "Agent"), h("th", {}, "Started"),
          h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Duration"))),
        h("tbody", {}, traces.map((trace) => h("tr", {},
          h("td", {}, h("a", { href: `#/traces/${enc(trace.trace_id)}`, class: "mono" }, String(trace.trace_id).slice(0, 16))),
          h("td", {}, trace.agent || "–"),
          h("td", {}, trace.start_time ? new Date(trace.start_time).toLocaleString() : "–"),
          h("td", { class: "num" }, (trace.spans || []).length),
          h("td", { class: "num" }, formatMs(traceDuration(trace)))))))));
    } catch (error) {
      mount(body, unavailable(error));
    }
  }
  await load();
}

/** Order spans depth-first from the roots, so children sit under their parent. */
function ordered(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const out = [];
  const visit = (parent, depth) => {
    for (const span of children.get(parent) || []) { out.push({ span, depth }); visit(span.span_id, depth + 1); }
  };
  visit(null, 0);
  return out;
}

function startOf(span) {
  const value = span.start_time ?? span.start;
  if (typeof value === "number") return value > 1e12 ? value : value * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed;
}

async function renderTrace(main, id) {
  let trace;
  try {
    trace = await get(`/v1/traces/${enc(id)}`);
  } catch (error) {
    mount(main, h("p", {}, h("a", { href: "#/traces" }, "← Traces")), h("h1", {}, "Trace"), unavailable(error));
    return;
  }
  const rows = ordered(trace.spans || []);
  const total = Math.max(1, ...rows.map(({ span }) => span.duration_ms || 0));
  const starts = rows.map(({ span }) => startOf(span));
  const known = starts.every((start) => start !== null);
  const origin = known ? Math.min(...starts) : 0;
  const span_total = known ? Math.max(1, ...rows.map(({ span }, index) => starts[index] - origin + (span.duration_ms || 0))) : total;
  const detail = h("div", { class: "card span-detail", id: "span-detail" }, h("p", { class: "muted" }, "Select a span to see its attributes."));
  const show = (span) => mount(detail, h("h3", {}, span.name), kv([
    ["Status", statusPill(span.status || "ok")], ["Duration", formatMs(span.duration_ms)], ["Span id", h("code", {}, span.span_id)],
  ]), h("h3", {}, "Attributes"), h("pre", {}, pretty(span.attributes || {})));

  mount(main,
    h("p", {}, h("a", { href: "#/traces" }, "← Traces")),
    h("h1", {}, "Trace ", h("code", {}, trace.trace_id)),
    kv([["Agent", trace.agent], ["Session", trace.session_id], ["Spans", rows.length], ["Duration", formatMs(total)]]),
    h("h2", {}, "Waterfall"),
    h("div", { class: "waterfall card", id: "waterfall" }, rows.map(({ span, depth }, index) => {
      const left = known ? ((starts[index] - origin) / span_total) * 100 : 0;
      const width = Math.max(0.5, ((span.duration_ms || 0) / span_total) * 100);
      const failed = span.status && !["ok", "unset"].includes(String(span.status).toLowerCase());
      return h("div", { class: "span-row" },
        h("button", { type: "button", style: { paddingLeft: `${0.25 + depth * 0.9}rem` }, title: span.name, onclick: () => show(span) }, span.name),
        h("div", { class: "track", "aria-hidden": "true" },
          h("div", { class: `bar${failed ? " error" : ""}`, style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` } }),
          h("span", { class: "bar-label" }, formatMs(span.duration_ms))));
    })),
    detail);
  if (rows.length) show(rows[0].span);
}
