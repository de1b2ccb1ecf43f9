// The dashboard: pending reviews read once with the scoped token, then kept current from the
// live stream (native EventSource, a new ticket per connection: see stream.js).
import { followEvents } from "./stream.js";

const $ = (id) => document.getElementById(id);

function item(id, text) {
  const li = document.createElement("li");
  li.id = id;
  li.textContent = text;
  return li;
}

function summary(message) {
  return `${message.text || "(no text)"} — ${message.review ? message.review.type : "message"}`;
}

async function call(api, token, method, path) {
  const resp = await fetch(`${api}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
  if (!resp.ok) throw Object.assign(new Error(`${path} answered ${resp.status}`), { status: resp.status });
  return resp.json();
}

async function loadPending(api, token) {
  const pending = await call(api, token, "GET", "/api/v1/reviews/pending");
  $("pending").replaceChildren(...pending.map((m) => item(`pending-${m.id}`, summary(m))));
}

function onEvent(name, data) {
  if (name === "message:created" && data.review && data.review.status === "pending") {
    if (!$(`pending-${data.id}`)) $("pending").prepend(item(`pending-${data.id}`, summary(data)));
  } else if (name === "review:responded" || name === "review:expired") {
    const row = $(`pending-${data.id}`);
    if (row) row.remove();
    const outcome = name === "review:expired" ? "expired" : JSON.stringify(data.review.response);
    $("answers").prepend(item(`answer-${data.id}`, `${data.text || data.id}: ${outcome}`));
  } else if (name === "delivery:status") {
    const id = `delivery-${data.deliveryId}`;
    const text = `${data.eventType} → ${data.url}: ${data.status} (${data.attempts} attempt${data.attempts === 1 ? "" : "s"})`;
    const row = $(id);
    if (row) row.textContent = text;
    else $("deliveries").prepend(item(id, text));
  }
}

function start(api, token) {
  const state = $("state");
  followEvents({
    base: api,
    mintTicket: async () => (await call(api, token, "POST", "/api/v1/events/tickets")).ticket,
    onEvent,
    onState: (s) => { state.dataset.state = s; state.textContent = s; },
    // A first connection (or one that could not resume) reads the list again.
    onOpen: ({ resumed }) => { if (!resumed) loadPending(api, token).catch(console.error); },
  });
}

const params = new URLSearchParams(location.hash.slice(1));
const api = params.get("api");
const token = params.get("token");
if (api && token) {
  // The token stays in the fragment, which the browser never sends to any server.
  start(api.replace(/\/$/, ""), token);
} else {
  const form = $("setup");
  form.hidden = false;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    location.hash = new URLSearchParams({ api: data.get("api"), token: data.get("token") }).toString();
    location.reload();
  });
}
