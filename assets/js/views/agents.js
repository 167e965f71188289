// Agents: the list (errors visible) and one agent's detail (tools, memory, model routing).

import { get, enc } from "../api.js";
import { h, mount, statusPill, errorBox, kv, pill } from "../dom.js";

export async function render(main, route) {
  if (route.args[0]) return renderDetail(main, route.args[0]);
  let body;
  try {
    body = await get("/v1/agents");
  } catch (error) {
    mount(main, h("h1", {}, "Agents"), errorBox(error));
    return;
  }
  const list = body.agents || [];
  mount(main,
    h("div", { class: "row spread" }, h("h1", {}, "Agents"), h("span", { class: "muted" }, `${list.length} loaded`)),
    list.length ? h("div", { class: "grid", id: "agent-list" }, list.map(card))
      : h("p", { class: "muted" }, "No agents are loaded. Add *.agent.yaml files to the config directory."));
}

function card(agent) {
  return h("article", { class: "card agent", dataset: { agent: agent.name } },
    h("div", { class: "row spread" },
      h("h3", {}, h("a", { href: `#/agents/${enc(agent.name)}` }, agent.name)), statusPill(agent.status)),
    h("p", { class: "muted" }, agent.description || "No description"),
    agent.status === "error" ? h("div", { class: "error" }, agent.error || "failed to load") : null,
    agent.model ? kv([["Model", h("code", {}, agent.model)], ["Pattern", agent.orchestration]]) : null,
    h("div", { class: "row actions" },
      agent.status === "ready" ? h("a", { class: "button primary", href: `#/chat/${enc(agent.name)}` }, "Chat") : null,
      h("a", { class: "button", href: `#/agents/${enc(agent.name)}` }, "Details"),
      h("a", { class: "button", href: `#/traces?agent=${enc(agent.name)}` }, "Traces")));
}

async function renderDetail(main, name) {
  let agent;
  try {
    agent = await get(`/v1/agents/${enc(name)}`);
  } catch (error) {
    mount(main, h("p", {}, h("a", { href: "#/agents" }, "← Agents")), h("h1", {}, name), errorBox(error));
    return;
  }
  const model = agent.model && typeof agent.model === "object" ? agent.model : null;
  const label = (pair) => (pair ? `${pair.provider}/${pair.model}` : null);
  const roles = model && model.roles ? Object.entries(model.roles) : [];
  mount(main,
    h("p", {}, h("a", { href: "#/agents" }, "← Agents")),
    h("div", { class: "row spread" },
      h("h1", {}, agent.display_name || agent.name, " ", statusPill(agent.status)),
      agent.status === "ready" ? h("a", { class: "button primary", href: `#/chat/${enc(agent.name)}` }, "Open chat") : null),
    h("p", { class: "muted" }, agent.description || ""),
    agent.status === "error" ? h("div", { class: "error" }, agent.error || "failed to load") : null,
    h("div", { class: "grid" },
      model ? h("section", { class: "card" }, h("h3", {}, "Model routing"), kv([
        ["Primary", h("code", {}, label(model.primary) || "–")],
        ["Fallback", model.fallback ? h("code", {}, label(model.fallback)) : "none"],
        (model.extra || []).length ? ["More", (model.extra || []).map(label).join(", ")] : null,
        ["Strategy", model.routing],
        ...roles.map(([role, candidates]) => [`Role: ${role}`, (candidates || []).join(" → ")]),
      ])) : null,
      agent.orchestration && typeof agent.orchestration === "object" ? h("section", { class: "card" }, h("h3", {}, "Orchestration"), kv([
        ["Pattern", agent.orchestration.pattern],
        ["Max iterations", agent.orchestration.max_iterations],
        ["Timeout", `${agent.orchestration.timeout} s`],
        agent.version ? ["Version", agent.version] : null,
      ])) : null,
      agent.memory ? h("section", { class: "card" }, h("h3", {}, "Memory"), kv([
        ["Conversational", agent.memory.conversational || "none"],
        ["Semantic", agent.memory.semantic || "none"],
      ])) : null,
      h("section", { class: "card" }, h("h3", {}, "Tools"),
        (agent.tools || []).length ? h("div", { class: "row" }, agent.tools.map((tool) => pill(tool)))
          : h("p", { class: "muted" }, "No tools."))));
}
