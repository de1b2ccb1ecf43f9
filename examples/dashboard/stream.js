// Follow a Sayso account's live events with the browser's native EventSource.
//
// EventSource cannot send headers, so each connection opens with a stream ticket: single use,
// valid 60 s, minted by `mintTicket()` (here with the page's scoped token; a product could
// instead ask its own backend, which holds the credential). EventSource's own reconnect would
// reuse the spent ticket, so on any error the connection is closed, a new ticket minted, and a
// new EventSource resumes after the last event id it saw (?lastEventId=): nothing is lost.

const EVENTS = [
  "message:created", "message:updated", "review:responded", "review:expired", "review:voted",
  "agent:status", "delivery:status",
];

export function followEvents({ base, mintTicket, onEvent, onState = () => {}, onOpen = () => {} }) {
  let source = null;
  let lastEventId = null;
  let stopped = false;
  let failures = 0;
  let timer = null;

  async function connect() {
    if (stopped) return;
    onState(failures ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = await mintTicket();
    } catch (err) {
      if (err && err.status === 401) { onState("unauthorized"); return; }
      return retry();
    }
    if (stopped) return;
    const query = new URLSearchParams({ ticket });
    if (lastEventId) query.set("lastEventId", lastEventId);
    source = new EventSource(`${base}/api/v1/events?${query}`);
    source.onopen = () => {
      failures = 0;
      onState("live");
      onOpen({ resumed: lastEventId !== null });
    };
    for (const name of EVENTS) {
      source.addEventListener(name, (e) => {
        if (e.lastEventId) lastEventId = e.lastEventId;
        onEvent(name, JSON.parse(e.data));
      });
    }
    // A lost connection, or the gateway's "event: error" (the credential was revoked): this
    // ticket is spent either way; the next mint tells whether the credential still holds.
    source.addEventListener("error", () => {
      source.close();
      source = null;
      retry();
    });
  }

  function retry() {
    if (stopped) return;
    failures += 1;
    onState("reconnecting");
    timer = setTimeout(connect, Math.min(15_000, 250 * 2 ** Math.min(failures, 6)));
  }

  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (source) source.close();
    },
  };
}
