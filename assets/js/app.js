// Entry point: a hash router (#/view/arg?key=value) that mounts one view at a time.

import { get } from "./api.js";
import { h, mount, errorBox } from "./dom.js";
import * as agents from "./views/agents.js";
import * as chat from "./views/chat.js";
import * as traces from "./views/traces.js";
import * as metrics from "./views/metrics.js";
import * as knowledge from "./views/knowledge.js";
import * as system from "./views/system.js";

const views = { agents, chat, traces, metrics, knowledge, system };
let cleanup = null;

/** Parse "#/chat/helper?session=x" into { view, args, params }. */
export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#\/?/, "");
  const [pathPart, queryPart] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  // A client-side route without a hash (e.g. /chat/helper served by the fallback) works too.
  if (!parts.length && location.pathname !== "/") {
    return parseRoute(`#${location.pathname}${location.search}`);
  }
  return { view: parts[0] || "agents", args: parts.slice(1), params: new URLSearchParams(queryPart || "") };
}

async function route() {
  const main = document.getElementById("main");
  if (cleanup) { try { cleanup(); } catch { /* a view's cleanup must not block navigation */ } cleanup = null; }
  const current = parseRoute(location.hash);
  const view = views[current.view];
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === current.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!view) {
    mount(main, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/agents" }, "Go to agents")));
    return;
  }
  document.title = `${current.view[0].toUpperCase()}${current.view.slice(1)} · Astromesh`;
  mount(main, h("p", { class: "muted" }, "Loading…"));
  try {
    cleanup = (await view.render(main, current)) || null;
  } catch (error) {
    mount(main, errorBox(error));
  }
}

async function health() {
  const badge = document.getElementById("health");
  try {
    const body = await get("/v1/health");
    badge.textContent = `${body.status} · v${body.version}`;
    badge.className = "pill ok";
  } catch (error) {
    badge.textContent = error.status === 0 ? "offline" : "unhealthy";
    badge.className = "pill bad";
  }
}

window.addEventListener("hashchange", () => { route(); document.getElementById("main").focus(); });
route();
health();
setInterval(health, 15000);
