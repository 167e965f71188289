// DOM helpers. Text always goes in as text nodes: API data is never parsed as HTML.

/** h("div", {class: "card", onclick: fn, style: {width: "50%"}}, "text", child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "style") {
      // Through the CSSOM: the page's CSP (style-src 'self') blocks style attributes.
      Object.assign(element.style, value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, String(value));
  for (const child of children) {
    if (child instanceof Node) element.appendChild(child);
    else if (child !== undefined && child !== null) element.appendChild(document.createTextNode(String(child)));
  }
  return element;
}

/** Replace everything inside `element`. */
export function mount(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function pill(text, kind) {
  return h("span", { class: `pill ${kind || ""}` }, text);
}

export function statusPill(status) {
  const kind = { ready: "ok", healthy: "ok", running: "ok", ok: "ok", alive: "ok", leader: "ok",
    degraded: "warn", suspect: "warn", error: "bad", failing: "bad", dead: "bad", unavailable: "bad" }[status];
  return pill(status ?? "unknown", kind);
}

export function errorBox(error) {
  const text = error && error.message ? error.message : String(error);
  return h("div", { class: "error", role: "alert" }, text);
}

export function pretty(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

export function formatMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.round(ms * 10) / 10} ms`;
}

export function formatUptime(seconds) {
  const s = Math.floor(seconds || 0);
  const days = Math.floor(s / 86400), hours = Math.floor((s % 86400) / 3600), minutes = Math.floor((s % 3600) / 60);
  if (days) return `${days}d ${hours}h`;
  if (hours) return `${hours}h ${minutes}m`;
  if (minutes) return `${minutes}m ${s % 60}s`;
  return `${s}s`;
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([key, value]) => [h("dt", {}, key), h("dd", {}, value ?? "–")]));
}
