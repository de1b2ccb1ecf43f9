// The inbox: every pending review across the user's channels, newest first in the API, shown
// oldest first like a queue. Answered cards stay (showing the answer) until the next visit.

import { api } from "./api.js";
import { h } from "./dom.js";
import { MessageList } from "./messages.js";

export function inboxView(root, { channels }) {
  const listEl = h("div", { class: "messages inbox-list", role: "log", "aria-label": "Pending reviews", "aria-live": "polite" });
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
      for (const m of page.data) list.upsert(m);
      cursor = page.nextCursor;
      more.hidden = !cursor;
      empty.hidden = list.size > 0;
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  }
  more.addEventListener("click", () => load(cursor));
  load();
  return {
    title: "Inbox",
    onEvent(name, data) {
      if (name === "message:created" && data.review && data.review.status === "pending") list.upsert(data);
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
