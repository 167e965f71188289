// Chat: stream an agent's answer over the WebSocket; the session id lives in the URL.

import { get, del, enc, socketUrl } from "../api.js";
import { h, mount, errorBox, pretty, formatMs } from "../dom.js";

function newSessionId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return `sess_${Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

function setUrl(agent, session) {
  history.replaceState(null, "", `#/chat/${enc(agent)}?session=${enc(session)}`);
}

export async function render(main, route) {
  let agents = [];
  try {
    agents = ((await get("/v1/agents")).agents || []).filter((agent) => agent.status === "ready");
  } catch (error) {
    mount(main, h("h1", {}, "Chat"), errorBox(error));
    return;
  }
  if (!agents.length) {
    mount(main, h("h1", {}, "Chat"), h("p", { class: "muted" }, "No agent is ready to chat."));
    return;
  }
  const agentName = route.args[0] && agents.some((a) => a.name === route.args[0]) ? route.args[0] : agents[0].name;
  let session = route.params.get("session") || newSessionId();
  const autoQuery = route.params.get("q");
  setUrl(agentName, session);

  const picker = h("select", { id: "agent-picker", "aria-label": "Agent",
    onchange: () => { location.hash = `#/chat/${enc(picker.value)}`; } },
    agents.map((agent) => h("option", { value: agent.name, selected: agent.name === agentName }, agent.name)));
  const sessionLabel = h("code", { class: "session muted", id: "session-id" }, session);
  const messages = h("div", { class: "messages", id: "messages", role: "log", "aria-live": "polite", tabindex: "0", "aria-busy": "true" });
  const input = h("textarea", { id: "chat-input", placeholder: "Message the agent… (Enter to send, Shift+Enter for a new line)",
    "aria-label": "Message", rows: "1" });
  const sendButton = h("button", { class: "primary", id: "send", type: "submit" }, "Send");
  const form = h("form", { class: "composer", onsubmit: (event) => { event.preventDefault(); send(input.value); } },
    input, sendButton);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(input.value); }
  });

  const clearButton = h("button", { class: "danger", type: "button", id: "clear-history", onclick: clearHistory }, "Clear history");
  const newButton = h("button", { type: "button", onclick: () => {
    session = newSessionId(); setUrl(agentName, session); sessionLabel.textContent = session; messages.replaceChildren();
  } }, "New session");

  mount(main, h("div", { class: "chat" },
    h("div", { class: "row spread" }, h("h1", {}, "Chat"),
      h("div", { class: "chat-bar" }, picker, newButton, clearButton)),
    h("div", { class: "muted" }, "Session ", sessionLabel),
    messages, form));

  const scroll = () => { messages.scrollTop = messages.scrollHeight; };
  const addMessage = (role, text) => {
    const bubble = h("div", { class: `msg ${role}`, dataset: { role } }, text);
    messages.appendChild(bubble);
    scroll();
    return bubble;
  };

  // History from the memory endpoint; a session that does not exist yet is just empty.
  try {
    const history = await get(`/v1/memory/${enc(agentName)}/history/${enc(session)}`);
    for (const message of history.messages || []) {
      if (message.role === "user" || message.role === "assistant") addMessage(message.role, message.content ?? "");
    }
  } catch (error) {
    if (error.status !== 404) messages.appendChild(errorBox(error));
  }
  messages.removeAttribute("aria-busy");

  let socket = null;
  let pending = null; // { bubble, tools: Map<tool, [card]> }
  let queue = [];
  let closing = false;

  function connect() {
    socket = new WebSocket(socketUrl(agentName));
    socket.addEventListener("open", () => { for (const frame of queue) socket.send(frame); queue = []; });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      onFrame(frame);
    });
    socket.addEventListener("close", () => {
      if (!closing && pending) fail("The connection to the agent closed before the answer finished.");
      socket = null;
    });
    socket.addEventListener("error", () => {
      if (pending) fail("Could not reach the agent's WebSocket.");
    });
  }

  function bubbleFor() {
    if (!pending.bubble) {
      pending.bubble = addMessage("assistant", "");
      pending.bubble.classList.add("streaming");
    }
    return pending.bubble;
  }

  function onFrame(frame) {
    if (!pending) return;
    if (frame.type === "token") {
      if (!frame.content) return; // An empty token must not open an empty bubble.
      bubbleFor().textContent += frame.content;
      scroll();
    } else if (frame.type === "tool_call") {
      if (pending.bubble) { pending.bubble.classList.remove("streaming"); pending.bubble = null; }
      const output = h("div", { class: "tool-output" }, h("p", { class: "muted" }, "Running…"));
      const card = h("details", { class: "tool-card", dataset: { tool: frame.tool } },
        h("summary", {}, h("span", { class: "muted" }, "Tool "), frame.tool, " ", h("span", { class: "pill tool-state" }, "running")),
        h("div", { class: "body" }, h("h3", {}, "Input"), h("pre", {}, pretty(frame.input)), h("h3", {}, "Result"), output));
      messages.appendChild(card);
      const cards = pending.tools.get(frame.tool) || [];
      cards.push({ card, output });
      pending.tools.set(frame.tool, cards);
      scroll();
    } else if (frame.type === "tool_result") {
      const cards = pending.tools.get(frame.tool) || [];
      const entry = cards.shift();
      if (entry) {
        entry.output.replaceChildren(h("pre", {}, pretty(frame.output)));
        const state = entry.card.querySelector(".tool-state");
        state.textContent = "done";
        state.className = "pill ok tool-state";
      }
    } else if (frame.type === "done") {
      const bubble = pending.bubble;
      if (bubble) bubble.classList.remove("streaming");
      const usage = frame.usage || {};
      const timing = frame.timing || {};
      const previous = document.getElementById("last-meta");
      if (previous) previous.removeAttribute("id");
      const meta = h("div", { class: "meta", id: "last-meta" },
        `${formatMs(timing.total_ms)} · ${usage.total_tokens ?? "?"} tokens${frame.model ? ` · ${frame.model}` : ""}`);
      messages.appendChild(meta);
      if (frame.session_id && frame.session_id !== session) {
        session = frame.session_id; setUrl(agentName, session); sessionLabel.textContent = session;
      }
      linkTrace(meta, session);
      finish();
    } else if (frame.type === "error") {
      fail(frame.message || "The agent failed.");
    }
  }

  // The run's trace is stored before `done` is sent: the newest trace of this session is it.
  async function linkTrace(meta, runSession) {
    try {
      const traces = (await get(`/v1/traces/?agent=${enc(agentName)}&limit=20`)).traces || [];
      const trace = traces.find((candidate) => candidate.session_id === runSession);
      if (trace) {
        meta.append(" · ", h("a", { href: `#/traces/${enc(trace.trace_id)}`, class: "trace-link" }, "View trace"));
      }
    } catch {
      // Tracing off or unavailable on this node: the answer simply has no trace link.
    }
  }

  function fail(message) {
    if (pending && pending.bubble) pending.bubble.classList.remove("streaming");
    const box = errorBox(new Error(message));
    box.id = "chat-error";
    messages.appendChild(box);
    scroll();
    finish();
  }

  function finish() {
    pending = null;
    sendButton.disabled = false;
    input.disabled = false;
    input.focus();
  }

  function send(text) {
    const query = text.trim();
    if (!query || pending) return;
    input.value = "";
    addMessage("user", query);
    pending = { bubble: null, tools: new Map() };
    sendButton.disabled = true;
    input.disabled = true;
    const frame = JSON.stringify({ query, session_id: session });
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(frame);
    else { queue.push(frame); if (!socket) connect(); }
  }

  async function clearHistory() {
    if (!window.confirm("Clear this session's history?")) return;
    try {
      await del(`/v1/memory/${enc(agentName)}/history/${enc(session)}`);
      messages.replaceChildren(h("p", { class: "muted" }, "History cleared."));
    } catch (error) {
      messages.appendChild(errorBox(error));
    }
  }

  if (autoQuery) send(autoQuery);
  else input.focus();

  return () => { closing = true; if (socket) socket.close(); };
}
