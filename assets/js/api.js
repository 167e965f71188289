// The only module that talks to the daemon: the public /v1 API, with errors as ApiError.

const KEY_STORAGE = "astromesh.api_key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

function describe(status, detail) {
  let text;
  if (Array.isArray(detail)) {
    text = detail.map((item) => `${(item.loc || []).join(".")}: ${item.msg}`).join("\n");
  } else if (detail && typeof detail === "object") {
    text = JSON.stringify(detail);
  } else {
    text = detail || "";
  }
  const label = { 0: "Network error", 401: "Unauthorized", 404: "Not found", 408: "Timed out",
    413: "Too large", 422: "Invalid request", 429: "Too many requests", 503: "Unavailable" }[status];
  return label ? `${label} (${status}): ${text}`.replace(/: $/, "") : `Error ${status}: ${text}`;
}

export function apiKey() {
  try { return localStorage.getItem(KEY_STORAGE) || ""; } catch { return ""; }
}

function askForKey() {
  const key = window.prompt("This Astromesh node requires an API key:");
  if (key) {
    try { localStorage.setItem(KEY_STORAGE, key.trim()); } catch { /* private mode: ask again next time */ }
    return true;
  }
  return false;
}

export async function request(method, path, body) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(0, error.message || "the daemon is unreachable");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (response.status === 401 && attempt === 0 && askForKey()) continue;
    if (!response.ok) throw new ApiError(response.status, data && "detail" in data ? data.detail : text);
    return data;
  }
  throw new ApiError(401, "an API key is required");
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const del = (path) => request("DELETE", path);

export function enc(part) {
  return encodeURIComponent(part);
}

/** The agent WebSocket URL, on the same origin as the page. */
export function socketUrl(agent) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  const query = key ? `?api_key=${enc(key)}` : "";
  return `${scheme}//${location.host}/v1/ws/agent/${enc(agent)}${query}`;
}
