// The inbox: every pending review across the user's channels, newest first in the API, shown
// oldest first like a queue. Answered cards stay (showing the answer) until the next visit.
//
// At fleet volume (issue #29 item 8): filters by channel, review type, risk and age and a sort
// (oldest, newest, deadline, risk), sent to the API as its query and applied here too, to what
// is loaded and to every live event; and a bulk answer: tick several approval cards (a click,
// shift-click for a range, or x / Shift+X) and approve or reject them together. Each is still
// its own request and its own decision: one refused (409, answered elsewhere) says so on its own
// card and the others go through; one announcement sums it up.

import { announce } from "./announcer.js";
import { api } from "./api.js";
import { h, newId } from "./dom.js";
import { MessageList, order } from "./messages.js";
import { RISKS, riskOf, typeLabel } from "./reviews.js";

const TYPES = ["approval", "selection", "form", "text-input", "freeform"];
const RISK_FILTERS = [
  ["", "Any risk"],
  ["critical", "Critical"],
  ["high,critical", "High and above"],
  ["medium,high,critical", "Medium and above"],
  ["low", "Low"],
];
const AGES = [
  ["", "Any age"],
  ["300", "Older than 5 minutes"],
  ["3600", "Older than 1 hour"],
  ["86400", "Older than 1 day"],
];
const SORTS = [
  ["", "Oldest first"],
  ["newest", "Newest first"],
  ["deadline", "Deadline, soonest first"],
  ["risk", "Risk, highest first"],
];
const BULK_PARALLEL = 4; // answers in flight at once: each is its own request
const AGE_RECHECK_MS = 30_000;

/** The order of each sort; ties fall back to oldest first. */
const COMPARE = {
  "": order,
  newest: (a, b) => order(b, a),
  deadline: (a, b) => deadline(a) - deadline(b) || order(a, b),
  risk: (a, b) => riskRank(b) - riskRank(a) || order(a, b),
};

function deadline(m) {
  const at = Date.parse((m.review && m.review.expiresAt) || "");
  return Number.isFinite(at) ? at : Number.MAX_SAFE_INTEGER;
}

function riskRank(m) {
  return RISKS.indexOf(riskOf(m)) + 1; // none 0, low 1 … critical 4
}

/** Whether a card can be answered with the others: a pending approval that offers Approve and
 * Reject (options with those ids, or the default pair), not a quorum vote. */
export function bulkable(m) {
  const r = m.review;
  if (!r || r.status !== "pending" || r.type !== "approval" || r.quorum) return false;
  const options = Array.isArray((r.payload || {}).options) && r.payload.options.length ? r.payload.options : null;
  if (!options) return true;
  const ids = new Set(options.map((o) => o && o.id));
  return ids.has("approve") && ids.has("reject");
}

function select(label, choices, hint = "") {
  const id = newId("flt");
  const input = h("select", { id }, choices.map(([value, text]) => h("option", { value }, text)));
  return { input, element: h("div", { class: "field" }, h("label", { for: id, class: "label" }, label), input,
    hint ? h("span", { class: "hint" }, hint) : null) };
}

export function inboxView(root, { channels, shortcuts }) {
  // Not a live region: a polite log read every card aloud (thousands of characters on opening
  // the inbox). What changes is announced, short, by the app's one live region (announcer.js).
  const listEl = h("div", { class: "messages inbox-list" });
  const empty = h("p", { class: "muted empty" }, "Nothing waits for you. New reviews appear here as agents ask.");
  const hiddenNote = h("p", { class: "muted empty filtered-out", hidden: true }, "No review matches these filters.");
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const more = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Load more");

  const filters = {
    channel: select("Channel", [["", "All channels"]]),
    type: select("Review type", [["", "Any type"], ...TYPES.map((t) => [t, typeLabel(t)])]),
    risk: select("Risk", RISK_FILTERS),
    age: select("Waiting", AGES),
    sort: select("Sort", SORTS),
  };
  const state = () => ({
    channelId: filters.channel.input.value,
    type: filters.type.input.value,
    risk: filters.risk.input.value,
    olderThan: filters.age.input.value,
    sort: filters.sort.input.value,
  });
  const shows = (m) => {
    const f = state();
    if (f.channelId && m.channelId !== f.channelId) return false;
    const review = m.review || {};
    if (f.type && review.type !== f.type) return false;
    if (f.risk && !f.risk.split(",").includes(riskOf(m))) return false;
    if (f.olderThan && Date.now() - Date.parse(m.createdAt) < Number(f.olderThan) * 1000) return false;
    return true;
  };

  // The bulk answer's selection: ids of pending approval cards, in no order (the list's order is
  // the answer order).
  const selected = new Set();
  let anchor = null;
  let busy = false;
  const selection = {
    can: bulkable,
    has: (id) => selected.has(id),
    toggle(id, on, { range = false } = {}) {
      const ids = range && anchor ? between(anchor, id) : [id];
      for (const one of ids) setSelected(one, on);
      anchor = id;
      updateBar();
    },
  };
  const setSelected = (id, on) => {
    const m = list.get(id);
    if (!m || !bulkable(m)) return;
    if (on) selected.add(id);
    else selected.delete(id);
    list.selected(id, on);
  };
  // The shown answerable cards from `from` to `to`, either way round.
  const between = (from, to) => {
    const ids = list.messages().filter(bulkable).map((m) => m.id);
    const a = ids.indexOf(from);
    const b = ids.indexOf(to);
    if (a < 0 || b < 0) return [to];
    return ids.slice(Math.min(a, b), Math.max(a, b) + 1);
  };

  const count = h("span", { class: "bulk-count", id: newId("bulk") }, "0 selected");
  const selectAll = h("button", { type: "button", class: "btn btn-small" }, "Select all shown");
  const approve = h("button", { type: "button", class: "btn btn-small btn-primary", "aria-describedby": count.id, "aria-keyshortcuts": "Shift+A" }, "Approve selected");
  const reject = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-describedby": count.id, "aria-keyshortcuts": "Shift+R" }, "Reject selected");
  const none = h("button", { type: "button", class: "btn btn-small btn-quiet" }, "Clear selection");
  const result = h("p", { class: "bulk-result" });
  const bar = h("div", { class: "bulk-bar", role: "group", "aria-label": "Answer several", dataset: { count: "0" } },
    selectAll, count, approve, reject, none, result);

  const list = new MessageList(listEl, {
    channelName: (id) => channels.name(id),
    manages: (id) => channels.manages(id),
    agent: (id) => channels.get(id),
    showChannel: true,
    compare: COMPARE[""],
    shows,
    selection,
    onChange: () => changed(),
  });
  let cursor = null;
  const tools = h("form", { class: "inbox-filters", "aria-label": "Filter and sort" },
    Object.values(filters).map((f) => f.element));
  tools.addEventListener("submit", (event) => event.preventDefault());
  // Folded on a phone (the cards keep the height), open on a wider screen; the summary says how
  // many filters apply while it is folded.
  const active = h("span", { class: "filters-active" });
  const toolsBox = h("details", { class: "inbox-tools", open: window.matchMedia("(min-width: 761px)").matches },
    h("summary", {}, "Filter and sort", active), tools);
  root.append(h("div", { class: "inbox" },
    h("header", { class: "view-head" }, h("h1", { id: "view-title", tabindex: "-1" }, "Inbox")),
    toolsBox, bar, error, h("div", { class: "scroller" }, empty, hiddenNote, listEl, more)));

  function changed() {
    // A card answered, expired or hidden by a filter leaves the selection.
    for (const id of [...selected]) {
      const m = list.get(id);
      if (!m || !bulkable(m) || !shows(m)) {
        selected.delete(id);
        list.selected(id, false);
      }
    }
    empty.hidden = list.size > 0;
    hiddenNote.hidden = !(list.size > 0 && list.shown === 0);
    updateBar();
  }

  function updateBar() {
    const n = selected.size;
    count.textContent = `${n} selected`;
    bar.dataset.count = String(n);
    for (const b of [approve, reject, none]) {
      if (n && !busy) b.removeAttribute("aria-disabled");
      else b.setAttribute("aria-disabled", "true");
    }
  }

  async function load(next = null) {
    const f = state();
    try {
      // The API filters and sorts the pages; the same filter here keeps live events in line.
      const page = await api("/api/v1/reviews/inbox", {
        query: { limit: 50, cursor: next, channelId: f.channelId, type: f.type, risk: f.risk, olderThan: f.olderThan, sort: f.sort },
      });
      error.hidden = true;
      const added = page.data.filter((m) => list.upsert(m));
      cursor = page.nextCursor;
      // The last page hides the button: the focus goes on to the first card it brought rather
      // than falling to <body>.
      const focused = document.activeElement === more;
      more.hidden = !cursor;
      if (focused && more.hidden) focusFirst(added);
      changed();
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

  function refilter() {
    const f = state();
    const n = [f.channelId, f.type, f.risk, f.olderThan].filter(Boolean).length;
    active.textContent = n ? ` · ${n} filter${n === 1 ? "" : "s"} on` : "";
    list.arrange({ compare: COMPARE[filters.sort.input.value] || COMPARE[""], shows });
    // The API's pages under the new filter (cards already here stay, filtered here).
    cursor = null;
    load().then(() => {
      const shown = list.shown;
      announce(`${shown} review${shown === 1 ? "" : "s"} shown`);
    });
  }
  for (const f of Object.values(filters)) f.input.addEventListener("change", refilter);

  let listed = "";
  function channelOptions() {
    const current = filters.channel.input.value;
    const agents = [...channels.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    // Called on every pending-count change: rebuilt only when the channels themselves change.
    const key = JSON.stringify(agents.map((a) => [a.id, a.name]));
    if (key === listed) return;
    listed = key;
    filters.channel.input.replaceChildren(h("option", { value: "" }, "All channels"),
      ...agents.map((a) => h("option", { value: a.id }, a.name)));
    filters.channel.input.value = agents.some((a) => a.id === current) ? current : "";
  }
  channelOptions();

  async function answerSelected(option) {
    if (busy) return;
    const chosen = list.messages({ all: true }).filter((m) => selected.has(m.id));
    if (!chosen.length) {
      announce("No cards selected: press x on a card, or tick its Select box");
      return;
    }
    busy = true;
    updateBar();
    const verb = option === "approve" ? "Approved" : "Rejected";
    result.textContent = `${option === "approve" ? "Approving" : "Rejecting"} ${chosen.length}…`;
    const refused = [];
    let done = 0;
    const queue = chosen.slice();
    const one = async (m) => {
      const path = `/api/v1/reviews/${encodeURIComponent(m.id)}`;
      try {
        const updated = await api(`${path}/respond`, { method: "POST", body: { response: { selectedOption: option } } });
        done += 1;
        selected.delete(m.id);
        list.upsert(updated, "", true);
      } catch (err) {
        refused.push(err.message);
        selected.delete(m.id);
        let current = m;
        if (err.status === 409) {
          // Answered elsewhere (another tab, another person) or expired: show what is true.
          try {
            current = await api(path, { query: { channel: m.channelId } });
          } catch {
            // The note below still says why.
          }
        }
        list.upsert(current, `Not saved: ${err.message}`, true);
      }
    };
    const workers = Array.from({ length: Math.min(BULK_PARALLEL, queue.length) }, async () => {
      while (queue.length) await one(queue.shift());
    });
    await Promise.all(workers);
    busy = false;
    anchor = null;
    const summary = `${verb} ${done} of ${chosen.length}${refused.length ? `. ${refused.length} not saved: ${refused[0]}` : ""}`;
    result.textContent = summary;
    announce(summary);
    changed();
  }

  const cardId = (card) => card.dataset.messageId;
  const bulkKeys = {
    toggle(card) {
      const m = list.get(cardId(card));
      if (!m || !bulkable(m)) {
        announce("This card cannot be answered with others");
        return;
      }
      const on = !selected.has(m.id);
      selection.toggle(m.id, on);
      announce(`${on ? "Selected" : "Unselected"}, ${selected.size} selected`);
    },
    range(card) {
      const m = list.get(cardId(card));
      if (!m || !bulkable(m)) {
        announce("This card cannot be answered with others");
        return;
      }
      selection.toggle(m.id, true, { range: true });
      announce(`${selected.size} selected`);
    },
    answer: (option) => answerSelected(option),
  };
  if (shortcuts) shortcuts.bulk = bulkKeys;

  selectAll.addEventListener("click", () => {
    for (const m of list.messages()) if (bulkable(m)) setSelected(m.id, true);
    updateBar();
    announce(`${selected.size} selected`);
  });
  const guarded = (fn) => () => {
    if (busy) return;
    if (!selected.size) {
      announce("No cards selected: press x on a card, or tick its Select box");
      return;
    }
    fn();
  };
  approve.addEventListener("click", guarded(() => answerSelected("approve")));
  reject.addEventListener("click", guarded(() => answerSelected("reject")));
  none.addEventListener("click", guarded(() => {
    for (const id of [...selected]) setSelected(id, false);
    anchor = null;
    updateBar();
    announce("Selection cleared");
  }));

  more.addEventListener("click", () => load(cursor));
  load();
  // "Older than" moves with the clock: a card shown now may pass the filter in a minute.
  const ageTimer = setInterval(() => { if (filters.age.input.value) list.arrange(); }, AGE_RECHECK_MS);
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
    onChannels: channelOptions,
    resync: () => load(),
    destroy() {
      clearInterval(ageTimer);
      if (shortcuts && shortcuts.bulk === bulkKeys) shortcuts.bulk = null;
      list.clear();
    },
  };
}
