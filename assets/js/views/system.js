// System: daemon status, doctor checks, and the mesh (nodes and leader) when it is on.

import { get } from "../api.js";
import { h, mount, errorBox, kv, statusPill, formatUptime } from "../dom.js";

export async function render(main) {
  const status = h("section", { class: "card", id: "system-status" }, h("p", { class: "muted" }, "Loading…"));
  const doctor = h("section", { class: "card", id: "doctor" }, h("p", { class: "muted" }, "Running checks…"));
  const mesh = h("section", { class: "card", id: "mesh" }, h("p", { class: "muted" }, "Loading…"));
  mount(main, h("h1", {}, "System"), h("div", { class: "grid" }, status), h("h2", {}, "Checks"), doctor, h("h2", {}, "Mesh"), mesh);

  // The mesh is asked about only when the status says it is on: a standalone node answers its
  // endpoints with an error status, which the browser would log as a failed request.
  const statusLoaded = get("/v1/system/status").then((body) => {
    mount(status, h("h3", {}, "Status ", statusPill(body.status)), kv([
      ["Version", body.version], ["Mode", body.mode], ["Uptime", formatUptime(body.uptime_seconds)], ["PID", body.pid],
      ["Agents loaded", body.agents_loaded],
      body.providers ? ["Providers", `${body.providers.healthy} healthy · ${body.providers.degraded} degraded · ${body.providers.unavailable} unavailable`] : null,
    ]));
    return body;
  }).catch((error) => { mount(status, h("h3", {}, "Status"), errorBox(error)); return null; });

  get("/v1/system/doctor").then((body) => mount(doctor, h("h3", {}, "Doctor"),
    h("div", { class: "table-wrap" }, h("table", {}, h("tbody", {}, (body.checks || []).map((check) =>
      h("tr", {}, h("td", {}, check.name), h("td", {}, statusPill(check.status)), h("td", { class: "muted" }, check.message || ""))))))))
    .catch((error) => mount(doctor, h("h3", {}, "Doctor"), errorBox(error)));

  const current = await statusLoaded;
  if (current && current.mode === "standalone") {
    mount(mesh, h("p", { class: "muted" }, "Mesh mode is off: this node runs standalone."));
    return;
  }
  try {
    const state = await get("/v1/mesh/state");
    const nodes = state.nodes || [];
    mount(mesh, kv([["This node", state.this_node], ["Leader", state.leader || "none elected"], ["Nodes", nodes.length]]),
      h("div", { class: "table-wrap" }, h("table", { id: "mesh-nodes" },
        h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Address"), h("th", {}, "State"), h("th", {}, "Agents"), h("th", { class: "num" }, "Active"))),
        h("tbody", {}, nodes.map((node) => h("tr", {},
          h("td", {}, node.node_id, node.node_id === state.leader ? " ★" : ""),
          h("td", { class: "mono" }, node.address), h("td", {}, statusPill(node.state)),
          h("td", {}, (node.agents || []).join(", ")), h("td", { class: "num" }, node.active_requests ?? 0)))))));
  } catch (error) {
    if (error.status === 503 || error.status === 404) mount(mesh, h("p", { class: "muted" }, "Mesh mode is off: this node runs standalone."));
    else mount(mesh, errorBox(error));
  }
}
