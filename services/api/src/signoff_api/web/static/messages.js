// Messages as chat bubbles (newest last), their review cards and their webhook deliveries.

import { api } from "./api.js";
import { clear, h, timeEl } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { reviewCard } from "./reviews.js";

const DELIVERY_LABELS = {
  sent: "Webhook queued",
  webhook_delivered: "Webhook delivered",
  webhook_failed: "Webhook failed",
  agent_received: "Agent received",
};

/** Ordered, de-duplicated messages of one list; updates replace the element in place. */
export class MessageList {
  constructor(container, { channelName, showChannel = false, onChange = () => {} }) {
    this.container = container;
    this.channelName = channelName;
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

  clear() {
    for (const item of this.items.values()) if (item.panel) item.panel.destroy();
    this.items.clear();
    clear(this.container);
  }

  /** Insert or replace; keeps the list sorted oldest first. Returns true if it was new. */
  upsert(incoming, note = "") {
    // Events carry the message plus its eventId; the list keeps the message alone.
    const { eventId: _eventId, ...message } = incoming;
    const existing = this.items.get(message.id);
    if (existing && !newer(message, existing.message)) return false;
    const el = this.render(message, note);
    if (existing) {
      const hadPanel = existing.panel;
      existing.el.replaceWith(el);
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
    // Find the first message created after this one; append if none.
    let before = null;
    for (const other of this.items.values()) {
      if (other !== item && order(other.message, message) > 0 && (!before || order(other.message, before.message) < 0)) {
        before = other;
      }
    }
    if (before) this.container.insertBefore(el, before.el);
    else this.container.append(el);
    this.onChange();
    return true;
  }

  /** A delivery status event: update the badge and refresh an open deliveries panel. */
  deliveryChanged(data) {
    const item = this.items.get(data.messageId);
    if (!item) return;
    if (String(data.eventType || "").startsWith("review.") && item.message.deliveryStatus !== "agent_received") {
      this.upsert({ ...item.message, deliveryStatus: data.status, _rev: Date.now() });
    } else if (item.panel) item.panel.reload();
  }

  render(message, note) {
    const mine = message.senderType === "user";
    const el = h("article", {
      class: `msg msg-${message.status || "info"} from-${message.senderType || "agent"}${mine ? " mine" : ""}`,
      id: `msg-${message.id}`,
      dataset: { messageId: message.id },
      "aria-label": `Message from ${senderLabel(message, this.channelName)}`,
    });
    const sender = senderLabel(message, this.channelName);
    const channel = this.channelName(message.channelId);
    const href = `#/c/${encodeURIComponent(message.channelId)}`;
    const head = h("header", { class: "msg-head" },
      // In the inbox the channel matters: the sender links to it, or the channel is named.
      this.showChannel && sender === channel
        ? h("a", { class: "sender", href }, sender)
        : h("span", { class: "sender" }, sender),
      this.showChannel && sender !== channel ? h("a", { class: "msg-channel", href }, `#${channel}`) : null,
      message.status && message.status !== "info" ? h("span", { class: `badge badge-${message.status}` }, message.status) : null,
      timeEl(message.createdAt),
    );
    const body = h("div", { class: "md" });
    // The only innerHTML in the app: renderMarkdown escapes the text before adding markup.
    body.innerHTML = renderMarkdown(message.text);
    el.append(head, body);
    if (note) el.append(h("p", { class: "note", role: "status" }, note));
    if (message.review) {
      el.append(reviewCard(message, {
        onAnswered: (updated, why) => this.upsert({ ...updated, _rev: Date.now() }, why ? `Not saved: ${why}` : ""),
      }));
    }
    // A webhook goes out when a review is answered or expires (or, if the agent asked for
    // them, for human messages): before that there is nothing to show.
    const settled = message.review ? message.review.status !== "pending" : message.deliveryStatus && message.deliveryStatus !== "sent";
    if (settled) {
      const item = () => this.items.get(message.id);
      const toggle = h("button", {
        type: "button", class: "btn btn-small btn-quiet", "aria-expanded": "false",
        "aria-controls": `deliveries-${message.id}`,
      }, "Deliveries");
      toggle.addEventListener("click", () => {
        const current = item();
        if (current) this.togglePanel(current, !current.panel);
      });
      el.append(h("footer", { class: "msg-foot" },
        message.deliveryStatus ? h("span", { class: `badge delivery-${message.deliveryStatus}`, dataset: { delivery: message.deliveryStatus } },
          DELIVERY_LABELS[message.deliveryStatus] || message.deliveryStatus) : null,
        toggle));
    }
    return el;
  }

  togglePanel(item, open) {
    const toggle = item.el.querySelector(".msg-foot .btn-quiet");
    if (open && !item.panel) {
      item.panel = new DeliveryPanel(item.message);
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
  // Replayed or duplicate events must not undo a newer state (e.g. a late message:created after
  // the review was answered). A review that left "pending" never goes back.
  if (candidate._rev) return true;
  const { _rev: _a, ...left } = candidate;
  const { _rev: _b, ...right } = existing;
  const a = candidate.review;
  const b = existing.review;
  if (a && b && b.status !== "pending" && a.status === "pending") return false;
  if (candidate.deliveryStatus !== existing.deliveryStatus) return true;
  return JSON.stringify(left) !== JSON.stringify(right);
}

function order(a, b) {
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
  constructor(message) {
    this.message = message;
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
      this.show((data && data.data) || []);
      if (!this.shown) {
        this.shown = true;
        this.el.scrollIntoView({ block: "nearest" });
      }
    } catch (err) {
      this.status.textContent = err.status === 404 ? "Delivery history is not available." : err.message;
    }
  }

  show(deliveries) {
    clear(this.list);
    this.retry.hidden = deliveries.filter((d) => d.source !== "test").length === 0;
    if (!deliveries.length) {
      this.list.append(h("p", { class: "muted" }, "No webhook deliveries for this message yet."));
      return;
    }
    for (const d of deliveries) {
      const attempts = d.attempts || [];
      this.list.append(h("div", { class: "delivery", dataset: { state: d.state, deliveryId: d.id } },
        h("div", { class: "delivery-head" },
          h("span", { class: `badge state-${d.state}` }, d.state),
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
