// The inbox: every pending review across the user's channels, newest first in the API, shown
// oldest first like a queue. Answered cards stay (showing the answer) until the next visit.

import { api } from "./api.js";
import { h } from "./dom.js";
import { MessageList } from "./messages.js";

export function inboxView(root, { channels }) {
  // Not a live region: a polite log read every card aloud (thousands of characters on opening
  // the inbox). What changes is announced, short, by the app's one live region (announcer.js).
  const listEl = h("div", { class: "messages inbox-list" });
  const empty = h("p", { class: "muted empty" }, "Nothing waits for you. New reviews appear here as agents ask.");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const more = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Load more");
  const list = new MessageList(listEl, {
    channelName: (id) => channels.name(id),
    manages: (id) => channels.manages(id),
    agent: (id) => channels.get(id),
    showChannel: true,
    onChange: () => { empty.hidden = list.size > 0; },
  });
  let cursor = null;
  root.append(h("div", { class: "inbox" },
    h("header", { class: "view-head" }, h("h1", { id: "view-title", tabindex: "-1" }, "Inbox")),
    error, h("div", { class: "scroller" }, empty, listEl, more)));

  async function load(next = null) {
    try {
      const page = await api("/api/v1/reviews/inbox", { query: { limit: 50, cursor: next } });
      const added = page.data.filter((m) => list.upsert(m));
      cursor = page.nextCursor;
      // The last page hides the button: the focus goes on to the first card it brought rather
      // than falling to <body>.
      const focused = document.activeElement === more;
      more.hidden = !cursor;
      if (focused && more.hidden) focusFirst(added);
      empty.hidden = list.size > 0;
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  }
  const focusFirst = (messages) => {
    const els = messages.map((m) => document.getElementById(`msg-${m.id}`)).filter(Boolean);
    els.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    (els[0] || listEl.lastElementChild || root.querySelector("h1")).focus();
  };
  more.addEventListener("click", () => load(cursor));
  load();
  return {
    title: "Inbox",
    onEvent(name, data) {
      if (name === "message:created" && data.review && data.review.status === "pending") list.upsert(data);
      // Its channel was deleted: the inbox never shows a review whose channel is gone.
      else if (name === "review:expired" && data.review && data.review.expiredReason === "channel_deleted") list.remove(data.id);
      else if ((name === "review:responded" || name === "review:expired" || name === "review:voted" || name === "message:updated") && list.has(data.id)) {
        list.upsert(data);
      }
      else if (name === "delivery:status") list.deliveryChanged(data);
    },
    onChannels() {},
    resync: () => load(),
    destroy() { list.clear(); },
  };
}
