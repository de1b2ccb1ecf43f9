// What a screen reader hears of the inbox, said once and short. One visually hidden live region
// for the whole app: the message lists themselves are not live (a polite log over the list read
// every card aloud, thousands of characters on opening the inbox), so what changes is announced
// here instead: "New review from deploy-bot: Ship v2.4?", "Approved", "Rejected: not today".
//
// Each announcement is its own paragraph added to a role=log region that only speaks additions,
// so two announcements in a row are both read (rewriting one status text would drop the first).

import { h } from "./dom.js";

const KEEP = 20; // older announcements are removed (removals are not read)
const MAX_WORDS = 12;
const MAX_CHARS = 100;

let region = null;

/** The live region, created once and kept outside #app so no view change removes it. A region
 * has to be in the page before its first announcement for screen readers to follow it. */
export function mountAnnouncer() {
  if (region && region.isConnected) return region;
  region = h("div", {
    id: "announcer", class: "visually-hidden", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-atomic": "false", "aria-label": "Announcements",
  });
  document.body.append(region);
  return region;
}

/** Say `text` once, politely. */
export function announce(text) {
  const said = String(text || "").trim();
  if (!said) return;
  const live = mountAnnouncer();
  live.append(h("p", {}, said));
  while (live.childElementCount > KEEP) live.firstElementChild.remove();
}

/** The first words of a message's markdown as plain text, for an announcement or a description. */
export function firstWords(markdown, words = MAX_WORDS) {
  const plain = String(markdown || "")
    .replace(/```[\s\S]*?```/g, " ")
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*`~]+/g, "")
    .replace(/(^|\s)[#>|]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
  if (!plain) return "";
  const parts = plain.split(" ");
  let out = parts.slice(0, words).join(" ");
  if (out.length > MAX_CHARS) out = `${out.slice(0, MAX_CHARS - 1).trimEnd()}…`;
  else if (parts.length > words) out += "…";
  return out;
}

/** New reviews that arrive together become one announcement ("3 new reviews: …"), so a burst
 * from a fleet of agents is not a minute of speech. */
export class ReviewAnnouncer {
  constructor(channelName, { delayMs = 400 } = {}) {
    this.channelName = channelName;
    this.delayMs = delayMs;
    this.seen = new Set(); // message ids already announced (a resumed stream can replay one)
    this.queue = [];
    this.timer = null;
  }

  newReview(message) {
    if (!message || !message.id || this.seen.has(message.id)) return;
    this.seen.add(message.id);
    if (this.seen.size > 5000) this.seen = new Set([...this.seen].slice(-1000));
    this.queue.push(message);
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  flush() {
    this.timer = null;
    const batch = this.queue.splice(0);
    if (batch.length === 1) {
      const m = batch[0];
      const words = firstWords(m.text);
      announce(`New review from ${this.from(m)}${words ? `: ${words}` : ""}`);
    } else if (batch.length > 1) {
      const from = [...new Set(batch.map((m) => this.from(m)))];
      const named = from.slice(0, 3).join(", ") + (from.length > 3 ? ` and ${from.length - 3} more` : "");
      announce(`${batch.length} new reviews, from ${named}`);
    }
  }

  from(message) {
    return message.senderType === "agent" || !message.senderType
      ? message.senderName || this.channelName(message.channelId)
      : this.channelName(message.channelId);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }
}
