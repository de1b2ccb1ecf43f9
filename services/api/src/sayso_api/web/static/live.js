// Live updates from the realtime gateway's SSE stream, read with the browser's own EventSource.
//
// EventSource cannot send an Authorization header, so every connection opens with a stream
// ticket: a single-use credential minted with the session (POST /api/v1/events/tickets) and
// passed as ?ticket=. A ticket opens one connection, so EventSource's own reconnect (same URL,
// used ticket) cannot work: on any error this closes it, mints a new ticket and opens a new
// EventSource that resumes with ?lastEventId= (the last id received), so events published while
// the connection was down are replayed (24 h window) before live ones.

const MAX_BACKOFF_MS = 15_000;
// The events the gateway sends (an EventSource only hands over the names it listens for).
const EVENTS = [
  "message:created", "message:updated", "review:responded", "review:expired", "review:voted",
  "agent:status", "delivery:status",
];

export class LiveStream {
  /**
   * onEvent(name, data, id): one event.
   * onState(state, detail): "connecting" | "live" | "reconnecting" | "offline".
   * onReady({resumed}): the stream is open; resumed=false means events may have been missed
   *   (first connect, or no event id to resume from), so views should reload their data.
   * onUnauthorized(): the token was refused.
   */
  constructor({
    url = "/api/v1/events", ticketUrl = "/api/v1/events/tickets", token, onEvent, onState, onReady,
    onUnauthorized,
  }) {
    this.url = url;
    this.ticketUrl = ticketUrl;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onReady = onReady || (() => {});
    this.onUnauthorized = onUnauthorized || (() => {});
    this.lastEventId = null;
    this.state = "connecting";
    this.stopped = false;
    this.hangUp = null;
    this.failures = 0;
    this.wake = null;
    this.onOnline = () => this.reconnectNow();
    // The browser knows the network is gone before a half-open TCP stream would notice: drop
    // it now and show it; the "online" event reconnects and resumes.
    this.onOffline = () => {
      if (this.hangUp) this.hangUp();
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
    if (this.hangUp) this.hangUp();
    if (this.wake) this.wake();
  }

  /** Drop the current connection (if any) and connect again at once. */
  reconnectNow() {
    if (this.hangUp) this.hangUp();
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
        // The stream ended (the server closed it, e.g. this client fell too far behind): resume.
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

  /** A new single-use ticket for one connection. */
  async ticket() {
    const resp = await fetch(this.ticketUrl, {
      method: "POST", headers: { Authorization: `Bearer ${this.token}` }, cache: "no-store",
    });
    if (resp.status === 401) throw Object.assign(new Error("unauthorized"), { unauthorized: true });
    if (!resp.ok) throw new Error(`ticket answered ${resp.status}`);
    return (await resp.json()).ticket;
  }

  /** One connection: resolves when it ends after having opened, rejects if it never opened. */
  async connect() {
    const ticket = await this.ticket();
    if (this.stopped) return;
    const query = new URLSearchParams({ ticket });
    const resuming = this.lastEventId !== null;
    if (resuming) query.set("lastEventId", this.lastEventId);
    const source = new EventSource(`${this.url}?${query}`);
    await new Promise((resolve, reject) => {
      let opened = false;
      const end = (err) => {
        source.close();
        this.hangUp = null;
        if (opened || !err) resolve();
        else reject(err);
      };
      this.hangUp = () => end(null);
      source.onopen = () => {
        opened = true;
        this.failures = 0;
        this.setState("live");
        this.onReady({ resumed: resuming });
      };
      for (const name of EVENTS) source.addEventListener(name, (e) => this.dispatch(name, e));
      // Both a lost connection and the gateway's own "event: error" frame (the credential was
      // revoked): either way this ticket is spent. The next one tells a revoked session (401).
      source.addEventListener("error", () => end(new Error("stream failed")));
    });
  }

  dispatch(name, e) {
    if (e.lastEventId) this.lastEventId = e.lastEventId;
    let parsed;
    try {
      parsed = JSON.parse(e.data);
    } catch {
      return;
    }
    try {
      this.onEvent(name, parsed, e.lastEventId || null);
    } catch (err) {
      // A view's bug must not kill the stream.
      console.error("live event handler failed", err);
    }
  }
}
