// The JSON API with the user's JWT. Every error becomes an ApiError carrying the API's
// {"error": {"code", "message", "field"}} so forms can put the message next to its field.

const TOKEN_KEY = "sayso.session";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

export const session = {
  load() {
    try {
      const raw = JSON.parse(localStorage.getItem(TOKEN_KEY) || "null");
      if (raw && raw.token && raw.expiresAt > Date.now()) return raw;
    } catch {
      // A corrupt entry is the same as none.
    }
    localStorage.removeItem(TOKEN_KEY);
    return null;
  },
  save(token, expiresIn, user) {
    const value = { token, user, expiresAt: Date.now() + expiresIn * 1000 };
    localStorage.setItem(TOKEN_KEY, JSON.stringify(value));
    return value;
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
  },
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

export async function api(path, { method = "GET", body, query, auth = true } = {}) {
  const resp = await request(path, { method, body, query, auth, accept: "application/json" });
  if (resp.status === 204) return null;
  return parseJson(await resp.text());
}

/** A file with the user's JWT (a plain link cannot send it), as a Blob. Errors are ApiErrors. */
export async function apiBlob(path, { query } = {}) {
  const resp = await request(path, { query, accept: "*/*" });
  return resp.blob();
}

async function request(path, { method = "GET", body, query, auth = true, accept }) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: accept };
  const current = session.load();
  if (auth && current) headers.Authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network_error", "cannot reach the server; check your connection");
  }
  if (!resp.ok) {
    const data = parseJson(await resp.text());
    const err = (data && data.error) || {};
    if (resp.status === 401 && auth) onUnauthorized();
    const retry = resp.headers.get("Retry-After");
    let message = err.message || `${resp.status} ${resp.statusText}`;
    if (resp.status === 429 && retry) message += ` (retry in ${retry} s)`;
    throw new ApiError(resp.status, err.code || "error", message, err.field);
  }
  return resp;
}

function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
