// One channel (agent): its messages newest-last, older pages on demand, and a composer for the
// human's own messages. A channel shared with the user (they are a member) is read and answered
// only: no composer, no settings.

import { announce, firstWords } from "./announcer.js";
import { api } from "./api.js";
import { h } from "./dom.js";
import { MessageList, senderLabel } from "./messages.js";

const PAGE = 50;

export function channelView(root, { channelId, channels }) {
  const agent = channels.get(channelId);
  const title = h("h1", { id: "view-title", tabindex: "-1" }, agent ? agent.name : "Channel");
  const status = h("span", { class: "channel-status" });
  const older = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Load older messages");
  // Not a live region (it read whole cards aloud): announcer.js says what changed, in short.
  const listEl = h("div", { class: "messages" });
  const empty = h("p", { class: "muted empty" }, "No messages yet.");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const scroller = h("div", { class: "scroller" }, older, empty, listEl);
  const list = new MessageList(listEl, {
    channelName: (id) => channels.name(id),
    manages: (id) => channels.manages(id),
    agent: (id) => channels.get(id),
    onChange: () => { empty.hidden = list.size > 0; },
  });
  let cursor = null;

  const input = h("textarea", { id: "composer", rows: 2, placeholder: "Write a message to the agent…", required: true });
  const send = h("button", { type: "submit", class: "btn btn-primary" }, "Send");
  const composer = h("form", { class: "composer", "aria-label": "Send a message" },
    h("label", { for: "composer", class: "visually-hidden" }, "Message"), input, send);
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    send.disabled = true;
    error.hidden = true;
    try {
      const message = await api("/api/v1/messages/user", { method: "POST", body: { channelId, text } });
      input.value = "";
      list.upsert(message);
      scrollToEnd(true);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      send.disabled = false;
      input.focus();
    }
  });
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line (chat convention).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  const settings = h("a", { class: "btn btn-small", href: `#/c/${encodeURIComponent(channelId)}/settings` }, "Agent settings");
  const sharedBadge = h("span", { class: "badge badge-shared", title: "Its owner shared this channel with you: you read and answer its reviews" }, "Shared with you");
  root.append(h("div", { class: "channel" },
    h("header", { class: "view-head" },
      h("div", { class: "title-row" }, title, status, sharedBadge),
      h("nav", { class: "view-actions", "aria-label": "Channel" }, settings)),
    error, scroller, composer));
  const showRole = () => {
    const mine = channels.manages(channelId);
    sharedBadge.hidden = mine;
    settings.hidden = !mine;
    composer.hidden = !mine;
  };
  showRole();

  const nearEnd = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  const scrollToEnd = (force = false) => {
    if (force || nearEnd()) scroller.scrollTop = scroller.scrollHeight;
  };

  const showStatus = () => {
    const a = channels.get(channelId);
    status.replaceChildren(a ? channels.statusDot(a) : "");
  };
  showStatus();

  // The first load is the page as it opened: none of it is news. A later one (the resync when the
  // live stream opens or comes back) brings what was sent meanwhile, and what it adds is news: it
  // can also win the race against the same message's live event, which then adds nothing.
  let opened = false;
  async function load() {
    try {
      const page = await api("/api/v1/messages", { query: { channel: channelId, limit: PAGE } });
      const news = opened;
      opened = true;
      const stick = list.size === 0 || nearEnd();
      for (const m of page.data.slice().reverse()) take(m, news);
      if (list.size === page.data.length) {
        cursor = page.nextCursor;
        older.hidden = !cursor;
      }
      empty.hidden = list.size > 0;
      if (stick) scrollToEnd(true);
    } catch (err) {
      error.textContent = err.status === 404 ? "This channel does not exist (or is not yours)." : err.message;
      error.hidden = false;
    }
  }

  // While it loads the button says so with aria-disabled rather than disabled: a disabled button
  // loses the focus to <body>. When the last page hides it, the focus goes to the newest of the
  // messages it brought, the one just above where the reader was.
  older.addEventListener("click", async () => {
    if (!cursor || older.getAttribute("aria-disabled") === "true") return;
    older.setAttribute("aria-disabled", "true");
    const height = scroller.scrollHeight;
    try {
      const page = await api("/api/v1/messages", { query: { channel: channelId, limit: PAGE, cursor } });
      const added = page.data.filter((m) => list.upsert(m));
      cursor = page.nextCursor;
      const focused = document.activeElement === older;
      older.hidden = !cursor;
      scroller.scrollTop += scroller.scrollHeight - height;
      if (focused && older.hidden) {
        const newest = added.length ? document.getElementById(`msg-${added[0].id}`) : null;
        (newest || title).focus();
      }
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      older.removeAttribute("aria-disabled");
    }
  });

  // The list is not a live region: a message the agent sends while the channel is open is said
  // in a line, once it is whole (a streamed one when it completes). Reviews are said by the app
  // (New review from …), the user's own messages not at all.
  // Each message is said at most once, whichever of its live event and a resync brings it.
  const said = new Set();
  /** Adds or updates a message in the list; news is said once it is whole (see sayMessage). */
  function take(message, news) {
    const before = list.items.get(message.id);
    const wasStreaming = Boolean(before && before.message.streamState === "streaming");
    const added = list.upsert(message);
    if (news) sayMessage(message, added, wasStreaming);
  }
  function sayMessage(message, added, wasStreaming) {
    if (message.review || message.senderType === "user" || said.has(message.id)) return;
    const whole = message.streamState !== "streaming" && message.streamState !== "aborted";
    if (!(added && whole) && !(wasStreaming && message.streamState !== "streaming")) return;
    said.add(message.id);
    const sender = senderLabel(message, (id) => channels.name(id));
    if (message.streamState === "aborted") announce(`${sender} stopped writing`);
    else announce(`${sender}: ${firstWords(message.text) || "sent a message"}`);
  }

  load();
  return {
    title: agent ? agent.name : "Channel",
    onEvent(name, data) {
      if (data.channelId !== channelId) return;
      if (name === "message:created" || name === "message:updated" || name === "review:responded" || name === "review:expired" || name === "review:voted") {
        const stick = nearEnd();
        take(data, true);
        if (stick) scrollToEnd(true);
      } else if (name === "delivery:status") list.deliveryChanged(data);
      else if (name === "agent:status") showStatus();
    },
    onChannels() {
      const a = channels.get(channelId);
      if (a) title.textContent = a.name;
      showStatus();
      showRole();
    },
    resync: load,
    destroy() { list.clear(); },
  };
}
