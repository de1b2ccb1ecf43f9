// Keyboard shortcuts for the message lists: move between cards, answer, add feedback, open a
// channel, go to a page. One table (SHORTCUTS) drives both the handler and the help dialog, so
// what the help lists is what the keys do.
//
// A shortcut never fires while the user types in a field, with Ctrl, Cmd or Alt held (the
// browser's and the screen reader's own keys), or on a key held down (holding "a" must not
// approve a whole queue). The "current card" is the message whose article holds the focus:
// j/k move the focus, and after an answer the list moves it to the next card waiting. In the
// inbox, x selects cards and Shift+A / Shift+R answer the selection (the inbox sets `bulk`).

import { announce } from "./announcer.js";
import { h } from "./dom.js";

const CARD = "article.msg";
const FIELDS = "input, textarea, select, [contenteditable]:not([contenteditable='false'])";
const GO_MS = 1500; // how long "g" waits for its second key
const GO = { i: "#/inbox", c: "#/channels", n: "#/notifications", o: "#/ops", a: "#/audit" };

/** Every shortcut, as the help dialog lists it. */
export const SHORTCUTS = [
  { group: "Cards", keys: ["j"], does: "Next card" },
  { group: "Cards", keys: ["k"], does: "Previous card" },
  { group: "Cards", keys: ["a"], does: "Approve the current card" },
  { group: "Cards", keys: ["r"], does: "Reject the current card" },
  { group: "Cards", keys: ["1", "…", "9"], join: " ", does: "Press the current card's first to ninth answer button (its options, then Dismiss)" },
  { group: "Cards", keys: ["f"], does: "Add feedback to the current card" },
  { group: "Cards", keys: ["e"], does: "Edit the current card's answer (its first field)" },
  { group: "Cards", keys: ["o"], does: "Open the current card's channel" },
  { group: "Cards", keys: ["Ctrl", "Enter"], join: "+", does: "In a field of a card with one Submit button: send the answer (⌘+Enter on a Mac)" },
  { group: "Cards", keys: ["Enter"], does: "In a one-line answer field: send, once you have edited the field (a prefilled answer is never sent by Enter alone)" },
  { group: "Cards", keys: ["Esc"], does: "Close the feedback box, the deliveries panel or an open preview; in any other field of a card, back to the card" },
  { group: "Inbox", keys: ["x"], does: "Select or unselect the current card, to answer several together" },
  { group: "Inbox", keys: ["Shift", "X"], join: "+", does: "Select every card from the last one you selected to the current one" },
  { group: "Inbox", keys: ["Shift", "A"], join: "+", does: "Approve the selected cards (each its own answer)" },
  { group: "Inbox", keys: ["Shift", "R"], join: "+", does: "Reject the selected cards (each its own answer)" },
  { group: "Pages", keys: ["g", "i"], join: " then ", does: "Go to the inbox" },
  { group: "Pages", keys: ["g", "c"], join: " then ", does: "Go to the channel list" },
  { group: "Pages", keys: ["g", "n"], join: " then ", does: "Go to notifications" },
  { group: "Pages", keys: ["g", "o"], join: " then ", does: "Go to the operator page" },
  { group: "Pages", keys: ["g", "a"], join: " then ", does: "Go to the audit log" },
  { group: "Pages", keys: ["?"], does: "Show these shortcuts" },
];

/** Whether a key event belongs to the field it was typed in. */
function typing(target) {
  return Boolean(target && target.closest && target.closest(FIELDS));
}

export class Shortcuts {
  /** `root`: the element holding the view (#main). */
  constructor(root) {
    this.root = root;
    // The inbox's bulk answer while the inbox is open: {toggle(card), range(card), answer(option)}.
    this.bulk = null;
    this.go = null;
    this.goTimer = null;
    this.opener = null;
    this.dialog = this.buildDialog();
    this.onKey = (event) => this.key(event);
  }

  start() {
    document.addEventListener("keydown", this.onKey);
    return this;
  }

  stop() {
    document.removeEventListener("keydown", this.onKey);
    clearTimeout(this.goTimer);
    if (this.dialog.open) this.dialog.close();
    this.dialog.remove();
  }

  /** The visible way to the help: a button that opens it. */
  helpButton() {
    const button = h("button", {
      type: "button", class: "btn btn-small btn-quiet shortcuts-open", "aria-haspopup": "dialog", "aria-keyshortcuts": "?",
    }, "Keyboard shortcuts");
    button.addEventListener("click", () => this.openHelp());
    return button;
  }

  buildDialog() {
    const close = h("button", { type: "button", class: "btn btn-small" }, "Close");
    const groups = [...new Set(SHORTCUTS.map((s) => s.group))];
    const dialog = h("dialog", { class: "shortcuts-dialog", id: "shortcuts", "aria-labelledby": "shortcuts-title" },
      h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
      h("p", { class: "hint" }, "They work anywhere outside a text field. Press Esc to close."),
      groups.map((group) => h("table", { class: "shortcuts-table" },
        h("caption", {}, group),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Keys"), h("th", { scope: "col" }, "Does"))),
        h("tbody", {}, SHORTCUTS.filter((s) => s.group === group).map((s) => h("tr", {},
          h("td", {}, s.keys.map((k, i) => [i ? (s.join || " ") : "", k === "…" ? "…" : h("kbd", {}, k)])),
          h("td", {}, s.does)))))),
      h("div", { class: "actions" }, close));
    close.addEventListener("click", () => dialog.close());
    // Esc closes a modal dialog natively; either way focus goes back where it was.
    dialog.addEventListener("close", () => {
      const back = this.opener && this.opener.isConnected ? this.opener : this.root;
      this.opener = null;
      back.focus();
    });
    return dialog;
  }

  openHelp() {
    if (this.dialog.open) return;
    if (!this.dialog.isConnected) document.body.append(this.dialog);
    const active = document.activeElement;
    this.opener = active && active !== document.body ? active : null;
    this.dialog.showModal();
  }

  key(event) {
    if (event.defaultPrevented || event.isComposing) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (this.dialog.open) return; // the dialog's own keys (Tab, Esc) only
    const target = event.target;
    if (event.key === "Escape") {
      // From a field of a card back to the card, where the shortcuts work again.
      const card = typing(target) ? this.cardOf(target) : null;
      if (card) {
        event.preventDefault();
        card.focus();
        return;
      }
      // An open <details> (a preview, a request payload, the progress steps) closes like a menu.
      const details = target && target.closest ? target.closest("details[open]") : null;
      if (details && this.root.contains(details)) {
        event.preventDefault();
        details.open = false;
        const summary = details.querySelector(":scope > summary");
        if (summary) summary.focus();
      }
      return;
    }
    if (typing(target)) return;
    if (this.go) {
      const where = GO[event.key];
      this.go = null;
      clearTimeout(this.goTimer);
      if (where) {
        event.preventDefault();
        location.hash = where;
      }
      return;
    }
    if (event.key === "?") {
      event.preventDefault();
      this.openHelp();
      return;
    }
    if (event.shiftKey) {
      this.shifted(event);
      return;
    }
    const key = event.key;
    if (key === "g") {
      this.go = true;
      this.goTimer = setTimeout(() => { this.go = null; }, GO_MS);
      return;
    }
    if (key === "j" || key === "k") {
      event.preventDefault();
      this.move(key === "j" ? 1 : -1);
      return;
    }
    const card = this.current();
    if (!card) {
      if ("arfeox123456789".includes(key) && key.length === 1) announce("No card chosen: press j to go to the first one.");
      return;
    }
    if (event.repeat && /^[ar1-9]$/.test(key)) return;
    if (key === "a" || key === "r") {
      event.preventDefault();
      this.answer(card, key === "a" ? "approve" : "reject");
    } else if (/^[1-9]$/.test(key)) {
      event.preventDefault();
      this.press(card, Number(key));
    } else if (key === "f") {
      event.preventDefault();
      this.feedback(card);
    } else if (key === "e") {
      event.preventDefault();
      this.edit(card);
    } else if (key === "o") {
      event.preventDefault();
      this.open(card);
    } else if (key === "x" && this.bulk) {
      event.preventDefault();
      this.bulk.toggle(card);
    }
  }

  /** Shift+X, Shift+A, Shift+R: the inbox's selection (nothing elsewhere). */
  shifted(event) {
    const key = event.key.toLowerCase();
    if (!this.bulk || !["x", "a", "r"].includes(key)) return;
    event.preventDefault();
    if (event.repeat) return;
    if (key === "x") {
      const card = this.current();
      if (card) this.bulk.range(card);
      else announce("No card chosen: press j to go to the first one.");
    } else this.bulk.answer(key === "a" ? "approve" : "reject");
  }

  cards() {
    return [...this.root.querySelectorAll(CARD)].filter((el) => el.getClientRects().length > 0);
  }

  cardOf(el) {
    const card = el && el.closest ? el.closest(CARD) : null;
    return card && this.root.contains(card) ? card : null;
  }

  current() {
    return this.cardOf(document.activeElement);
  }

  move(step) {
    const cards = this.cards();
    if (!cards.length) {
      announce("No cards here.");
      return;
    }
    const now = this.current();
    let next;
    if (now) {
      next = cards[cards.indexOf(now) + step];
      if (!next) {
        announce(step > 0 ? "Last card" : "First card");
        return;
      }
    } else {
      // Nothing chosen yet: start from what is on screen.
      const top = this.root.getBoundingClientRect().top;
      next = step > 0
        ? cards.find((c) => c.getBoundingClientRect().bottom > top) || cards[0]
        : cards.slice().reverse().find((c) => c.getBoundingClientRect().top < window.innerHeight) || cards[cards.length - 1];
    }
    next.focus();
  }

  buttons(card) {
    return [...card.querySelectorAll(".review-form .actions button[type=submit]")].filter((b) => !b.disabled);
  }

  answer(card, option) {
    const button = this.buttons(card).find((b) => b.name === "selectedOption" && b.value === option);
    if (button) button.click();
    else announce(`This card has no ${option === "approve" ? "Approve" : "Reject"} button`);
  }

  press(card, n) {
    const button = this.buttons(card)[n - 1];
    if (button) button.click();
    else announce(`This card has no answer button ${n}`);
  }

  feedback(card) {
    const toggle = card.querySelector(".feedback-toggle");
    if (!toggle || toggle.disabled) {
      announce("This card takes no feedback");
      return;
    }
    if (toggle.getAttribute("aria-expanded") === "true") {
      const area = card.querySelector(".feedback textarea");
      if (area) area.focus();
    } else toggle.click();
  }

  edit(card) {
    const field = [...card.querySelectorAll(".review-form input, .review-form select, .review-form textarea")]
      .find((el) => !el.disabled && el.getClientRects().length > 0);
    if (field) field.focus();
    else announce("This card has no field to edit");
  }

  open(card) {
    const link = card.querySelector("a.sender[href^='#/c/'], a.msg-channel");
    if (link) location.hash = link.getAttribute("href");
  }
}
