// Live updates from the realtime gateway's SSE stream (GET /api/v1/events).
//
// EventSource cannot send an Authorization header and the gateway reads credentials only from
// headers, so the stream is read with fetch() and parsed here. Resume works as with
// EventSource: every frame has an id, and a reconnect sends the last one as Last-Event-ID, so
// events published while the connection was down are replayed (24 h window) before live ones.

const STALL_MS = 40_000; // the gateway sends a heartbeat comment every 15 s
const MAX_BACKOFF_MS = 15_000;

export class LiveStream {
  /**
   * onEvent(name, data, id): one event.
   * onState(state, detail): "connecting" | "live" | "reconnecting" | "offline".
   * onReady({resumed}): the stream is open; resumed=false means events may have been missed
   *   (first connect, or no event id to resume from), so views should reload their data.
   * onUnauthorized(): the token was refused.
   */
  constructor({ url = "/api/v1/events", token, onEvent, onState, onReady, onUnauthorized }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onReady = onReady || (() => {});
    this.onUnauthorized = onUnauthorized || (() => {});
    this.lastEventId = null;
    this.state = "connecting";
    this.stopped = false;
    this.controller = null;
    this.failures = 0;
    this.wake = null;
    this.onOnline = () => this.reconnectNow();
    // The browser knows the network is gone before a half-open TCP stream would notice: drop
    // it now and show it; the "online" event reconnects and resumes.
    this.onOffline = () => {
      if (this.controller) this.controller.abort();
      this.setState("offline");
    };
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
  }

  /** Drop the current connection (if any) and connect again at once. */
  reconnectNow() {
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
  }

  setState(state, detail = "") {
    this.state = state;
    this.onState(state, detail);
  }

  async loop() {
    let first = true;
    while (!this.stopped) {
      if (!first) this.setState(this.failures > 3 || !navigator.onLine ? "offline" : "reconnecting");
      else this.setState("connecting");
      first = false;
      try {
        await this.connect();
        // The server ended the stream (e.g. this client fell too far behind): resume now.
        this.failures = 0;
      } catch (err) {
        if (err && err.unauthorized) {
          this.setState("offline", "signed out");
          this.onUnauthorized();
          return;
        }
        this.failures += 1;
      }
      if (this.stopped) return;
      this.setState(this.failures > 3 || !navigator.onLine ? "offline" : "reconnecting");
      const delay = Math.min(MAX_BACKOFF_MS, this.failures === 0 ? 250 : 1000 * 2 ** (this.failures - 1));
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
    }
  }

  async connect() {
    const controller = new AbortController();
    this.controller = controller;
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` };
    const resuming = this.lastEventId !== null;
    if (resuming) headers["Last-Event-ID"] = this.lastEventId;
    const resp = await fetch(this.url, { headers, signal: controller.signal, cache: "no-store" });
    if (resp.status === 401) throw Object.assign(new Error("unauthorized"), { unauthorized: true });
    if (!resp.ok || !resp.body) throw new Error(`stream answered ${resp.status}`);
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let stall = setTimeout(() => controller.abort(), STALL_MS);
    let buffer = "";
    let announced = false;
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(stall);
        stall = setTimeout(() => controller.abort(), STALL_MS);
        buffer += value.replace(/\r\n?/g, "\n");
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (!announced) {
            // The first frame is the server's hello: the subscription exists from here on.
            announced = true;
            this.failures = 0;
            this.setState("live");
            this.onReady({ resumed: resuming });
          }
          this.dispatch(frame);
        }
      }
    } finally {
      clearTimeout(stall);
      controller.abort();
    }
  }

  dispatch(frame) {
    let id = null;
    let name = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (id !== null) this.lastEventId = id;
    if (!data.length) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    try {
      this.onEvent(name, parsed, id);
    } catch (err) {
      // A view's bug must not kill the stream.
      console.error("live event handler failed", err);
    }
  }
}
