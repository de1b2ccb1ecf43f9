// Messages as chat bubbles (newest last), their review cards, attachments and webhook
// deliveries. A streamed message (streamState "streaming") is re-rendered in place as its
// message:updated events arrive, with its progress steps (statusEvents) under the text.

import { firstWords } from "./announcer.js";
import { api, apiBlob } from "./api.js";
import { clear, h, timeEl } from "./dom.js";
import { endpointLabels } from "./endpoints.js";
import { renderMarkdown } from "./markdown.js";
import { pluginView } from "./plugins.js";
import { reviewAbout, reviewCard } from "./reviews.js";

// Attachments whose textContent (sent by the API for small text files) is previewed inline.
const PREVIEW_TYPES = new Set(["text/markdown", "text/plain"]);
// The API inlines text files up to this size as textContent; the inbox previews no larger ones.
const PREVIEW_MAX_BYTES = 64 * 1024;

// Delivery statuses in the order a delivery moves through them.
const DELIVERY_STEPS = ["sent", "webhook_failed", "webhook_delivered", "agent_received"];

const DELIVERY_LABELS = {
  sent: "Webhook queued",
  webhook_delivered: "Webhook delivered",
  webhook_failed: "Webhook failed",
  agent_received: "Agent received",
};
// The events an agent's default URL gets when it names none (DEFAULT_WEBHOOK_EVENTS).
const DEFAULT_WEBHOOK_EVENTS = ["review:responded", "review:expired"];
const NO_WEBHOOK = "No webhook configured";

/** Whether the answer (or expiry) of ``message`` has anywhere to go, read as the dispatcher picks
 * a target (sayso_dispatcher/targets.py): the message's own webhookUrl, else the agent's URL if
 * enabled and subscribed to the event, else the review's callback. The API marks every closed
 * review "sent" (the dispatcher's reconciliation looks for that mark), so without this the
 * badge would say "queued" for a webhook that will never go out. An agent this page does not
 * know yet counts as having one: better "queued" for a moment than a false "none". */
export function hasWebhookTarget(message, agent) {
  if (message.webhookUrl || !agent) return true;
  const event = message.review && message.review.status === "expired" ? "review:expired" : "review:responded";
  const events = Array.isArray(agent.webhookEvents) && agent.webhookEvents.length ? agent.webhookEvents : DEFAULT_WEBHOOK_EVENTS;
  if (agent.webhookUrl && agent.webhookEnabled !== false && events.includes(event)) return true;
  return Boolean(message.review && message.review.callback);
}

/** Ordered, de-duplicated messages of one list; updates replace the element in place. */
export class MessageList {
  /** ``compare(a, b)``: the order of two messages (default oldest first); ``shows(message)``:
   * whether a card is shown (a filter: the others stay in the list, hidden); ``selection``: the
   * inbox's bulk answer, {can(message), has(id), toggle(id, on, {range})} (a checkbox per card
   * it can answer). */
  constructor(container, {
    channelName, manages = () => true, agent = () => undefined, showChannel = false, onChange = () => {},
    compare = order, shows = () => true, selection = null,
  }) {
    this.container = container;
    this.compare = compare;
    this.shows = shows;
    this.selection = selection;
    this.channelName = channelName;
    // The message's channel as /api/v1/agents lists it (its webhook settings), if known.
    this.agent = agent;
    // Whether the user manages the message's channel: webhook deliveries are its owner's.
    this.manages = manages;
    this.showChannel = showChannel;
    this.onChange = onChange;
    this.items = new Map(); // id -> {message, el, panel}
  }

  has(id) {
    return this.items.has(id);
  }

  get size() {
    return this.items.size;
  }

  get(id) {
    const item = this.items.get(id);
    return item ? item.message : undefined;
  }

  /** How many cards the filter shows. */
  get shown() {
    let n = 0;
    for (const item of this.items.values()) if (!item.el.hidden) n += 1;
    return n;
  }

  /** The messages in the list's order, shown ones only unless ``all``. */
  messages({ all = false } = {}) {
    return [...this.container.children].map((el) => this.items.get(el.dataset.messageId))
      .filter((item) => item && (all || !item.el.hidden)).map((item) => item.message);
  }

  /** Apply a new order and filter to every card. */
  arrange({ compare = this.compare, shows = this.shows } = {}) {
    this.compare = compare;
    this.shows = shows;
    const items = [...this.items.values()].sort((a, b) => this.compare(a.message, b.message));
    for (const item of items) {
      item.el.hidden = !this.shows(item.message);
      this.container.append(item.el);
    }
    this.onChange();
  }

  /** Show a selection change on the card (its checkbox and its mark). */
  selected(id, on) {
    const item = this.items.get(id);
    if (!item) return;
    item.el.classList.toggle("is-selected", on);
    const box = item.el.querySelector(":scope > .msg-head .select-box input");
    if (box) box.checked = on;
  }

  clear() {
    for (const item of this.items.values()) if (item.panel) item.panel.destroy();
    this.items.clear();
    clear(this.container);
  }

  /** Take one message's card out of the list (its channel is gone). */
  remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    if (item.panel) item.panel.destroy();
    item.el.remove();
    this.items.delete(id);
    this.onChange();
  }

  /** Insert or replace; keeps the list sorted oldest first. Returns true if it was new.
   * ``force`` replaces whatever is shown: for what this tab itself learned (its own answer, a
   * delivery status event) rather than a copy of the message from the server. */
  upsert(incoming, note = "", force = false) {
    // Events carry the message plus its eventId (and review:voted the vote it is about); the
    // list keeps the message alone.
    const { eventId: _eventId, vote: _vote, ...message } = incoming;
    const existing = this.items.get(message.id);
    if (existing && !force && !newer(message, existing.message)) return false;
    // A pending review that did not change keeps its card, so a half-filled answer survives an
    // update of the message around it (streamed text, delivery status).
    const keep = existing && samePendingReview(existing.message, message)
      ? existing.el.querySelector(":scope > .review") : null;
    // Re-rendering removes the focused element from the page, and the browser drops the focus to
    // <body>: note where it was, to put it back (a half-typed answer, or the card itself).
    const active = document.activeElement;
    const hadFocus = Boolean(existing && active && existing.el.contains(active));
    const el = this.render(message, note, keep);
    if (existing) {
      const hadPanel = existing.panel;
      existing.el.replaceWith(el);
      if (hadFocus) (el.contains(active) && active !== existing.el ? active : el).focus({ preventScroll: true });
      existing.message = message;
      existing.el = el;
      existing.panel = null;
      if (hadPanel) {
        hadPanel.destroy();
        this.togglePanel(existing, true);
      }
      this.onChange();
      return false;
    }
    const item = { message, el, panel: null };
    this.items.set(message.id, item);
    // Find the first message that comes after this one; append if none.
    let before = null;
    for (const other of this.items.values()) {
      if (other !== item && this.compare(other.message, message) > 0 && (!before || this.compare(other.message, before.message) < 0)) {
        before = other;
      }
    }
    if (before) this.container.insertBefore(el, before.el);
    else this.container.append(el);
    this.onChange();
    return true;
  }

  /** This tab answered a review (or learned, from a 409, that it was closed): show the card's new
   * state and, if the focus was on that card (its buttons are disabled while the answer is
   * sent, so the browser has dropped it to <body>), move it to the next card that waits for an
   * answer, else the one before, else the answered card itself. */
  answered(updated, why) {
    const before = this.items.get(updated.id);
    const active = document.activeElement;
    const focusHere = !active || active === document.body || Boolean(before && before.el.contains(active));
    this.upsert(updated, why ? `Not saved: ${why}` : "", true);
    const item = this.items.get(updated.id);
    if (!focusHere || !item) return;
    const next = why ? null : this.waiting(item.el, 1) || this.waiting(item.el, -1);
    (next || item.el).focus();
  }

  /** The nearest card after (step 1) or before (step -1) `from` with a form to answer. */
  waiting(from, step) {
    let el = step > 0 ? from.nextElementSibling : from.previousElementSibling;
    while (el) {
      if (el.querySelector(":scope > .review .review-form")) return el;
      el = step > 0 ? el.nextElementSibling : el.previousElementSibling;
    }
    return null;
  }

  /** A delivery status event: update the badge and refresh an open deliveries panel. */
  deliveryChanged(data) {
    const item = this.items.get(data.messageId);
    if (!item) return;
    if (String(data.eventType || "").startsWith("review.") && item.message.deliveryStatus !== "agent_received") {
      this.upsert({ ...item.message, deliveryStatus: data.status }, "", true);
    } else if (item.panel) item.panel.reload();
  }

  render(message, note, keepCard = null) {
    const mine = message.senderType === "user";
    const streaming = message.streamState === "streaming";
    const el = h("article", {
      class: `msg msg-${message.status || "info"} from-${message.senderType || "agent"}${mine ? " mine" : ""}${streaming ? " is-streaming" : ""}`,
      id: `msg-${message.id}`,
      // Focusable by script: the keyboard shortcuts and the focus after an answer land on a card.
      tabindex: "-1",
      dataset: message.streamState ? { messageId: message.id, streamState: message.streamState } : { messageId: message.id },
      "aria-label": `Message from ${senderLabel(message, this.channelName)}`,
      "aria-busy": streaming ? "true" : null,
      hidden: !this.shows(message),
    });
    if (this.selection && this.selection.can(message) && this.selection.has(message.id)) el.classList.add("is-selected");
    const sender = senderLabel(message, this.channelName);
    const channel = this.channelName(message.channelId);
    const href = `#/c/${encodeURIComponent(message.channelId)}`;
    const iteration = Number.isInteger(message.iteration) && message.iteration >= 2 ? message.iteration : null;
    const head = h("header", { class: "msg-head" },
      this.selectBox(message),
      // In the inbox the channel matters: the sender links to it, or the channel is named.
      this.showChannel && sender === channel
        ? h("a", { class: "sender", href }, sender)
        : h("span", { class: "sender" }, sender),
      this.showChannel && sender !== channel ? h("a", { class: "msg-channel", href }, `#${channel}`) : null,
      message.status && message.status !== "info" ? h("span", { class: `badge badge-${message.status}` }, message.status) : null,
      iteration ? h("span", {
        class: "badge badge-iteration", title: `Revision ${iteration} of an earlier request`, dataset: { iteration: String(iteration) },
      }, `v${iteration}`) : null,
      streaming ? h("span", { class: "streaming", role: "status" },
        h("span", { class: "typing", "aria-hidden": "true" }, h("span", {}), h("span", {}), h("span", {})),
        h("span", { class: "streaming-text" }, "writing…")) : null,
      message.streamState === "aborted" ? h("span", { class: "badge badge-aborted", title: "The agent stopped before finishing" }, "stopped") : null,
      timeEl(message.createdAt),
    );
    el.append(head);
    const text = typeof message.text === "string" ? message.text : "";
    if (text || streaming) {
      const body = h("div", { class: "md" });
      // The only innerHTML of agent text: renderMarkdown escapes the text before adding markup.
      body.innerHTML = renderMarkdown(text);
      el.append(body);
    }
    const plugin = pluginView(message);
    if (plugin) el.append(plugin);
    const steps = Array.isArray(message.statusEvents) ? message.statusEvents : [];
    if (steps.length) el.append(statusSteps(steps, streaming));
    const files = Array.isArray(message.attachments) ? message.attachments : [];
    if (files.length) el.append(attachmentList(files));
    if (note) el.append(h("p", { class: "note", role: "status" }, note));
    if (message.review) {
      el.append(keepCard || reviewCard(message, {
        about: reviewAbout(message, this.channelName),
        onAnswered: (updated, why) => this.answered(updated, why),
      }));
    }
    // A webhook goes out when a review is answered or expires (or, if the agent asked for
    // them, for human messages): before that there is nothing to show.
    const settled = message.review ? message.review.status !== "pending" : message.deliveryStatus && message.deliveryStatus !== "sent";
    if (settled && this.manages(message.channelId)) {
      const item = () => this.items.get(message.id);
      // One "Deliveries" per answered card: each is described by what its message asked.
      const aboutId = `deliveries-about-${message.id}`;
      const about = message.review ? reviewAbout(message, this.channelName) : firstWords(text) || sender;
      const toggle = h("button", {
        type: "button", class: "btn btn-small btn-quiet", "aria-expanded": "false",
        "aria-controls": `deliveries-${message.id}`, "aria-describedby": aboutId,
      }, "Deliveries");
      toggle.addEventListener("click", () => {
        const current = item();
        if (current) this.togglePanel(current, !current.panel);
      });
      // "sent" with nowhere to send: say so rather than "queued" forever.
      const delivery = message.deliveryStatus === "sent" && !hasWebhookTarget(message, this.agent(message.channelId))
        ? "none" : message.deliveryStatus;
      el.append(h("footer", { class: "msg-foot" },
        delivery ? h("span", {
          class: `badge delivery-${delivery}`, dataset: { delivery },
          title: delivery === "none" ? "This agent has no webhook URL: nothing is sent. Set one in the agent's settings." : null,
        }, delivery === "none" ? NO_WEBHOOK : DELIVERY_LABELS[delivery] || delivery) : null,
        toggle, h("span", { id: aboutId, hidden: true }, about)));
    }
    return el;
  }

  /** The bulk-answer checkbox of a card the selection can answer; shift-click selects the range
   * from the last card ticked. */
  selectBox(message) {
    const sel = this.selection;
    if (!sel || !sel.can(message)) return null;
    const on = sel.has(message.id);
    const box = h("input", {
      type: "checkbox", checked: on, "aria-label": `Select: ${reviewAbout(message, this.channelName)}`,
    });
    box.addEventListener("click", (event) => sel.toggle(message.id, box.checked, { range: event.shiftKey }));
    return h("label", { class: "check select-box" }, box, h("span", { "aria-hidden": "true" }, "Select"));
  }

  togglePanel(item, open) {
    const toggle = item.el.querySelector(".msg-foot .btn-quiet");
    if (open && !item.panel) {
      item.panel = new DeliveryPanel(item.message, hasWebhookTarget(item.message, this.agent(item.message.channelId)));
      // Esc in the panel closes it and gives the focus back to its toggle.
      item.panel.el.addEventListener("keydown", (event) => {
        if (event.key !== "Escape" || event.isComposing) return;
        event.preventDefault();
        this.togglePanel(item, false);
        const now = item.el.querySelector(".msg-foot .btn-quiet");
        if (now) now.focus();
      });
      item.el.append(item.panel.el);
      item.panel.reload();
      item.panel.el.scrollIntoView({ block: "nearest" });
    } else if (!open && item.panel) {
      item.panel.destroy();
      item.panel.el.remove();
      item.panel = null;
    }
    if (toggle) toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
}

function newer(candidate, existing) {
  // Every change to a message moves its updatedAt (the server stamps each write), so a copy is
  // newer exactly when its updatedAt is later: replayed or duplicate events (a late
  // message:created after the review was answered, a streamed draft's earlier text) never undo a
  // newer state. A review that left "pending" never goes back, whatever the clocks say. At the
  // same updatedAt the later delivery step wins: a delivery:status event applied here keeps the
  // message's updatedAt, and the review:responded copy of the same message can arrive after it
  // (the two come from different topics), still saying "sent".
  const a = candidate.review;
  const b = existing.review;
  if (a && b && b.status !== "pending" && a.status === "pending") return false;
  const was = Date.parse(existing.updatedAt || existing.createdAt || "");
  const now = Date.parse(candidate.updatedAt || candidate.createdAt || "");
  if (Number.isFinite(was) && Number.isFinite(now) && now !== was) return now > was;
  return DELIVERY_STEPS.indexOf(candidate.deliveryStatus) > DELIVERY_STEPS.indexOf(existing.deliveryStatus);
}

function samePendingReview(before, after) {
  const a = before.review;
  const b = after.review;
  return Boolean(a && b && a.status === "pending" && b.status === "pending"
    && JSON.stringify(a) === JSON.stringify(b));
}

/** A streamed message's progress steps: a live list while it streams, folded away after. */
function statusSteps(steps, streaming) {
  const sorted = steps.slice().sort((x, y) => (x.index ?? 0) - (y.index ?? 0));
  const list = h("ol", { class: "status-steps", "aria-label": "Progress" },
    sorted.map((s, i) => h("li", {
      class: `step${s.toolHint ? " step-tool" : ""}${streaming && i === sorted.length - 1 ? " step-current" : ""}`,
      dataset: { index: String(s.index ?? i) },
    }, s.toolHint ? h("span", { class: "step-kind" }, "tool") : null, h("span", { class: "step-text" }, s.text))));
  if (streaming) return list;
  return h("details", { class: "steps" }, h("summary", {}, `${sorted.length} step${sorted.length === 1 ? "" : "s"}`), list);
}

/** Files attached to a message: a download link each and, for small text, a safe preview. */
function attachmentList(files) {
  return h("ul", { class: "attachments", "aria-label": "Attachments" }, files.map((file) => {
    const name = file.filename || "file";
    const link = h("a", {
      class: "att-name", href: `/api/v1/files/${encodeURIComponent(file.id)}/download`, download: name,
      title: `Download ${name}`,
    }, name);
    const status = h("span", { class: "att-status", role: "status" });
    link.addEventListener("click", (event) => {
      // The API wants the user's JWT, which a plain link cannot send: fetch, then save the blob.
      event.preventDefault();
      download(file, link, status);
    });
    const mime = String(file.mimeType || "").toLowerCase().split(";")[0].trim();
    let preview = null;
    if (PREVIEW_TYPES.has(mime) && typeof file.textContent === "string") {
      preview = h("details", { class: "att-details", open: true }, h("summary", {}, "Preview"),
        previewContent(mime, file.textContent));
    } else if (PREVIEW_TYPES.has(mime) && typeof file.size === "number" && file.size <= PREVIEW_MAX_BYTES) {
      // Live events carry no textContent (it could make an event larger than the broker takes):
      // fetch the small file itself.
      preview = h("details", { class: "att-details", open: true }, h("summary", {}, "Preview"),
        h("p", { class: "muted att-loading" }, "Loading preview…"));
      apiBlob(`/api/v1/files/${encodeURIComponent(file.id)}/download`)
        .then((blob) => blob.text())
        .then((text) => preview.querySelector(".att-loading").replaceWith(previewContent(mime, text)))
        .catch(() => { preview.querySelector(".att-loading").textContent = "Preview not available."; });
    }
    return h("li", { class: "attachment", dataset: { attachmentId: file.id } },
      h("div", { class: "att-head" },
        link,
        h("span", { class: "att-meta muted" }, [mime || "file", formatSize(file.size)].filter(Boolean).join(" · ")),
        status),
      preview);
  }));
}

function previewContent(mime, text) {
  if (mime !== "text/markdown") return h("pre", { class: "att-preview att-text" }, text);
  const content = h("div", { class: "md att-preview" });
  // renderMarkdown escapes the file's text before adding its fixed set of tags.
  content.innerHTML = renderMarkdown(text);
  return content;
}

async function download(file, link, status) {
  if (link.getAttribute("aria-disabled") === "true") return;
  link.setAttribute("aria-disabled", "true");
  status.classList.remove("att-error");
  status.textContent = "Downloading…";
  try {
    const blob = await apiBlob(`/api/v1/files/${encodeURIComponent(file.id)}/download`);
    const url = URL.createObjectURL(blob);
    const save = h("a", { href: url, download: file.filename || "file", class: "visually-hidden" });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    status.textContent = "";
  } catch (err) {
    status.classList.add("att-error");
    status.textContent = err.status === 404 ? "File not found." : `Download failed: ${err.message}`;
  } finally {
    link.removeAttribute("aria-disabled");
  }
}

function formatSize(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Oldest first (the inbox's queue order, and a channel's). */
export function order(a, b) {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function senderLabel(message, channelName) {
  switch (message.senderType) {
    case "user": return "You";
    case "webhook": return message.senderName || "Webhook";
    case "system": return "System";
    default: return message.senderName || channelName(message.channelId);
  }
}

/** Every webhook attempt of one message, with a retry button. */
class DeliveryPanel {
  constructor(message, hasTarget = true) {
    this.message = message;
    this.hasTarget = hasTarget;
    this.status = h("p", { class: "panel-status", role: "status" });
    this.list = h("div", { class: "delivery-list" });
    this.retry = h("button", { type: "button", class: "btn btn-small btn-warning" }, "Retry delivery");
    this.retry.addEventListener("click", () => this.retryNow());
    const refresh = h("button", { type: "button", class: "btn btn-small" }, "Refresh");
    refresh.addEventListener("click", () => this.reload());
    this.el = h("section", { class: "deliveries", id: `deliveries-${message.id}`, "aria-label": "Webhook deliveries" },
      h("header", { class: "panel-head" }, h("h3", {}, "Webhook deliveries"), h("div", { class: "actions" }, refresh, this.retry)),
      this.status, this.list);
    this.pending = null;
  }

  destroy() {
    clearTimeout(this.pending);
    this.destroyed = true;
  }

  reload() {
    // Bursts of delivery events become one request.
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.load(), 150);
  }

  async load() {
    if (this.destroyed) return;
    try {
      const data = await api(`/api/v1/messages/${encodeURIComponent(this.message.id)}/deliveries`, {
        query: { channel: this.message.channelId },
      });
      const deliveries = (data && data.data) || [];
      // The endpoints' descriptions, for the deliveries that went to one (a member sees ids).
      const labels = deliveries.some((d) => d.endpointId) ? await endpointLabels(this.message.channelId) : new Map();
      if (this.destroyed) return;
      this.show(deliveries, labels);
      if (!this.shown) {
        this.shown = true;
        this.el.scrollIntoView({ block: "nearest" });
      }
    } catch (err) {
      this.status.textContent = err.status === 404 ? "Delivery history is not available." : err.message;
    }
  }

  show(deliveries, labels = new Map()) {
    clear(this.list);
    this.retry.hidden = deliveries.filter((d) => d.source !== "test").length === 0;
    if (!deliveries.length) {
      this.list.append(h("p", { class: "muted" }, this.hasTarget
        ? "No webhook deliveries for this message yet."
        : `${NO_WEBHOOK} for this agent, so nothing is sent. Set a webhook URL in the agent's settings; later answers go there.`));
      return;
    }
    for (const d of deliveries) {
      const attempts = d.attempts || [];
      // Which target: an explicit endpoint (its description, else its id), or the agent's own URL
      // (the implicit endpoint).
      const endpoint = d.endpointId ? labels.get(d.endpointId) : null;
      const target = d.endpointId
        ? `endpoint ${endpoint ? (endpoint.description || endpoint.url) : d.endpointId}${endpoint && !endpoint.channelId ? " (account-wide)" : ""}`
        : d.source === "test" ? "test" : "agent URL";
      this.list.append(h("div", { class: "delivery", dataset: { state: d.state, deliveryId: d.id, endpointId: d.endpointId || "" } },
        h("div", { class: "delivery-head" },
          h("span", { class: `badge state-${d.state}` }, d.state),
          h("span", { class: "target muted" }, target),
          h("code", { class: "url" }, d.url),
          h("span", { class: "muted" }, `${d.eventType} · ${d.attemptCount} attempt${d.attemptCount === 1 ? "" : "s"}`),
          d.nextAttemptAt ? h("span", { class: "muted" }, "next try ", timeEl(d.nextAttemptAt)) : null),
        attempts.length ? h("div", { class: "table-wrap" }, h("table", { class: "attempts" },
          h("caption", { class: "visually-hidden" }, `Attempts to ${d.url}`),
          h("thead", {}, h("tr", {}, ["Time", "Status", "Latency", "Error"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, attempts.map((a) => h("tr", { class: ok(a) ? "ok" : "fail" },
            h("td", {}, timeEl(a.at)),
            h("td", {}, a.statusCode ?? "—"),
            h("td", {}, `${Math.round(a.durationMs)} ms`),
            h("td", { class: "error" }, a.error ? `${a.errorKind ? `${a.errorKind}: ` : ""}${a.error}` : (a.errorKind || "")),
          ))))) : h("p", { class: "muted" }, "Not attempted yet.")));
    }
  }

  async retryNow() {
    this.retry.disabled = true;
    this.status.textContent = "Retrying…";
    try {
      const data = await api(`/api/v1/messages/${encodeURIComponent(this.message.id)}/webhook/retry`, {
        method: "POST", query: { channel: this.message.channelId },
      });
      const n = ((data && data.requeued) || []).length;
      this.status.textContent = `Retry queued for ${n} deliver${n === 1 ? "y" : "ies"}.`;
      this.reload();
    } catch (err) {
      this.status.textContent = err.message;
    } finally {
      this.retry.disabled = false;
    }
  }
}

function ok(attempt) {
  return attempt.statusCode >= 200 && attempt.statusCode < 300;
}
