// Review cards: the controls for each of the five review types, the answer, and the outcome.
// A 422 from the API names the field at fault ("response.<name>"); its message is shown next to
// that field. Nothing from the payload is rendered as HTML: labels and descriptions are text
// (the one exception is a markdown text-input's preview, which goes through markdown.js).
//
// The payloads are Placet's (Agent API v1): approval options with a style (ghost included) and
// allowComment; selection as {mode, items} or the older {multiple, options}; the twelve form
// field types with defaultValue; text-input with prefill/markdown; submitLabel and dismissLabel
// on every type. A dismiss button answers {"_dismissed": true}. Any card can carry optional
// feedback for the agent, sent next to the response.
//
// Sayso's review policies: a quorum card lists each reviewer's vote and counts the approvals
// (an answer there is the user's vote; once they voted, the card says so and waits for the
// others); a review with onExpire says what happens if nobody answers, and an expired one shows
// the default that applied.
//
// Edit before approve (issue #32): an approval whose payload has `edit: {args, schema?}` shows
// the action's arguments for editing, as a form when the schema is a flat object of primitive
// properties (string, number, integer, boolean, enum), else as a JSON editor, with a list of
// what changed (old → new). An approving button sends `editedArgs` only when something
// changed; any other button never sends them. A 422 names `response.editedArgs.<name>`, shown at
// that field.

import { announce, firstWords } from "./announcer.js";
import { api, session } from "./api.js";
import { append, h, newId, timeEl } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { approvalOptions, approves, checkResponse, selectionItems } from "./review_rules.js";

const STYLES = new Set(["primary", "secondary", "success", "danger", "warning", "default", "ghost"]);
const DISMISSED = "_dismissed";
const MASK = "••••••••";

/**
 * The card for `message.review`. `onAnswered(message)` gets the updated message after a
 * successful answer (or after a 409, the current state). `about` says what the review asks in a
 * few words (see reviewAbout): every answer button is described by it, so "Approve" heard
 * among thirteen others says which question it answers.
 */
export function reviewCard(message, { onAnswered, about = "" }) {
  const review = message.review;
  const payload = review.payload || {};
  const dismissed = isDismissed(review.response);
  // Each card starts with a heading that says what it asks ("Approval review: Ship v2.4 to
  // production?"), for screen readers (the message's text shows it on screen): forty cards are
  // forty headings to move between. The card is no landmark: forty regions all named
  // "Approval review" told nobody anything (axe's landmark-unique).
  const words = firstWords(message.text, 10);
  const card = h("section", {
    class: `review review-${review.status}${dismissed ? " review-dismissed" : ""}`,
    dataset: { reviewType: review.type, reviewStatus: review.status },
  });
  card.append(h("header", { class: "review-head" },
    h("h2", { class: "visually-hidden" }, `${typeLabel(review.type)} review${words ? `: ${words}` : ""}`),
    h("span", { class: "review-type", "aria-hidden": "true" }, typeLabel(review.type)),
    riskBadge(riskOf(message)),
    statusBadge(review),
  ));
  if (review.quorum) card.append(quorumBox(review));
  if (review.status !== "pending") {
    card.append(outcome(review));
    return card;
  }
  if (review.policyFallback && review.policyFallback.reason) {
    // A rule matched but could not answer it (its response did not fit): the owner sees why.
    card.append(h("p", { class: "policy-note" }, "A policy rule matched but could not answer: ", review.policyFallback.reason));
  }
  if (review.onExpire) {
    card.append(h("div", { class: "default-hint" },
      h("span", { class: "hint" }, "If nobody answers in time, the agent's default applies:"),
      responseSummary({ ...review, response: review.onExpire.response })));
  }
  const mine = myVote(review);
  if (mine) {
    card.append(h("p", { class: "your-vote", role: "status" },
      "You voted ", answerChip(review, mine.response), ". Waiting for the other reviewers."));
    return card;
  }
  const general = h("p", { class: "form-error", role: "alert", hidden: true });
  const form = h("form", { class: "review-form", novalidate: true });
  const fields = new Map(); // API field name -> error element
  const build = BUILDERS[review.type] || BUILDERS.freeform;
  const controls = build(payload, fields);
  const rememberButton = remembers(message) ? h("button", {
    type: "submit", class: "btn btn-outline btn-remember", name: "selectedOption", value: "approve",
    dataset: { remember: String(REMEMBER_SECONDS) },
  }, "Approve, and allow the same for 1 h") : null;
  if (rememberButton) controls.actions.push(rememberButton);
  // A quorum vote is its response alone (the API refuses feedback with it).
  const feedback = review.quorum ? { element: null, toggle: null, value: () => "" } : feedbackBox();
  const dismissLabel = typeof payload.dismissLabel === "string" && payload.dismissLabel.trim() ? payload.dismissLabel : null;
  // The primary submit button comes first in the form, so Enter in a one-line input uses it.
  const actions = h("div", { class: "actions", role: "group", "aria-label": "Answer" },
    controls.actions,
    dismissLabel ? h("button", {
      type: "submit", class: "btn btn-outline btn-dismiss", name: DISMISSED, value: "1", formnovalidate: true,
    }, dismissLabel) : null,
    feedback.toggle);
  append(form, [controls.element, feedback.element, actions, general]);
  card.append(form);
  if (about) {
    // A hidden element still describes: screen readers read it after the button's own name.
    const aboutId = newId("about");
    card.append(h("span", { id: aboutId, hidden: true }, about));
    for (const button of actions.querySelectorAll("button")) button.setAttribute("aria-describedby", aboutId);
  }
  sendOnlyWhenMeant(form, controls.actions);

  const setBusy = (busy) => {
    for (const el of form.querySelectorAll("button, input, select, textarea")) el.disabled = busy;
    card.setAttribute("aria-busy", busy ? "true" : "false");
  };
  const clearErrors = () => {
    general.hidden = true;
    general.textContent = "";
    for (const el of fields.values()) {
      el.hidden = true;
      el.textContent = "";
      const input = document.getElementById(el.dataset.for || "");
      if (input) input.removeAttribute("aria-invalid");
      describes(el, false);
    }
  };
  const showError = (field, text) => {
    const el = field && fields.get(field);
    if (el) {
      el.textContent = text;
      el.hidden = false;
      describes(el, true);
      const input = document.getElementById(el.dataset.for || "");
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    } else {
      general.textContent = field ? `${field}: ${text}` : text;
      general.hidden = false;
    }
  };

  const submit = async (response, remember = null) => {
    clearErrors();
    const body = { response };
    if (remember) body.remember = remember;
    const note = feedback.value();
    if (note) body.feedback = note;
    setBusy(true);
    try {
      const updated = await api(`/api/v1/reviews/${encodeURIComponent(message.id)}/respond`, {
        method: "POST",
        body,
      });
      announce(answerAnnouncement(updated.review || review, response, note) + (remember ? ", and allowed for 1 hour" : ""));
      onAnswered(updated);
    } catch (err) {
      setBusy(false);
      if (err.status === 409) {
        // Someone (another tab, another person) answered first, or it expired: show what is true.
        try {
          const current = await api(`/api/v1/reviews/${encodeURIComponent(message.id)}`, {
            query: { channel: message.channelId },
          });
          announce(`Not saved: ${err.message}`);
          onAnswered(current, err.message);
        } catch {
          showError(null, err.message);
        }
        return;
      }
      showError(err.field, err.message);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const submitter = event.submitter;
    if (submitter && submitter.name === DISMISSED) {
      submit({ [DISMISSED]: true });
      return;
    }
    let response;
    try {
      response = controls.collect(submitter);
    } catch (err) {
      // Client-side problems that the API cannot report (e.g. JSON that does not parse).
      showError(err.field || null, err.message);
      return;
    }
    // What the API would refuse is shown at once, at its field, with the API's message (the
    // same rules: review_rules.js); what only the API can tell goes to it.
    const refused = checkResponse(review.type, payload, response);
    if (refused) {
      clearErrors();
      showError(refused.field, refused.message);
      return;
    }
    // "Approve, and allow the same for 1 h": the same tool with the same arguments in this
    // channel is approved without asking for the next hour (GET …/remembered lists it).
    const remember = submitter && submitter.dataset.remember
      ? { forSeconds: Number(submitter.dataset.remember), scope: "channel" } : null;
    submit(response, remember);
  });
  return card;
}

export const RISKS = ["low", "medium", "high", "critical"];
const REMEMBER_SECONDS = 3600;

/** Whether a review's approval can be remembered: a plain approval (not a quorum vote) with an
 * "approve" option, of a message that names its tool (metadata.tool). */
function remembers(message) {
  const review = message.review;
  const meta = message.metadata;
  if (!review || review.type !== "approval" || review.quorum) return false;
  if (!meta || typeof meta !== "object" || typeof meta.tool !== "string" || !meta.tool) return false;
  const options = approvalOptions(review.payload);
  return options.some((o) => o && o.id === "approve");
}

/** A review's risk: the API's review.risk (a rule's label, else the agent's), else the agent's
 * metadata.risk; null when neither is one of the four labels. */
export function riskOf(message) {
  const review = message.review || {};
  const meta = message.metadata && typeof message.metadata === "object" ? message.metadata : {};
  for (const risk of [review.risk, meta.risk]) if (RISKS.includes(risk)) return risk;
  return null;
}

function riskBadge(risk) {
  if (!risk) return null;
  return h("span", { class: `badge risk risk-${risk}`, dataset: { risk } }, `${risk[0].toUpperCase()}${risk.slice(1)} risk`);
}

/** What a review asks, in a few words and whose it is: "Ship v2.4 to production? — release-bot". */
export function reviewAbout(message, channelName) {
  const from = channelName(message.channelId);
  const words = firstWords(message.text, 10);
  return words ? `${words} — ${from}` : `${typeLabel(message.review ? message.review.type : "")} review from ${from}`;
}

/** The short thing a screen reader hears after an answer: "Approved", "Rejected: not today",
 * "Answered", "Dismissed", or a quorum vote that waits for the others. */
export function answerAnnouncement(review, response, feedback = "") {
  if (isDismissed(response)) return "Dismissed";
  let said = "Answered";
  let why = feedback;
  if (review.type === "approval" && response && response.selectedOption) {
    const options = approvalOptions(review.payload);
    const opt = options.find((o) => o.id === response.selectedOption);
    const label = opt ? opt.label : response.selectedOption;
    said = { approve: "Approved", reject: "Rejected" }[response.selectedOption] || `Answered ${label}`;
    if (review.quorum && review.status === "pending") said = `Voted ${label}, waiting for the other reviewers`;
    else if (isObject(response.editedArgs)) said += " with edited arguments";
    if (typeof response.comment === "string" && response.comment) why = response.comment;
  }
  const words = firstWords(why, 12);
  return words ? `${said}: ${words}` : said;
}

/** Enter in a one-line field sends the answer only once that field was edited: a prefilled (or
 * default) answer is never sent by a stray Enter. Ctrl+Enter (Cmd+Enter) sends from any field
 * of a card that has one submit button; a card with several (Approve, Reject…) needs its
 * button, which is the choice. */
function sendOnlyWhenMeant(form, submitters) {
  form.addEventListener("input", (event) => {
    if (event.target instanceof HTMLElement) event.target.dataset.edited = "true";
  });
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    const target = event.target;
    if (!(target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement)) return;
    if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey) {
      event.preventDefault();
      if (submitters.length === 1) form.requestSubmit(submitters[0]);
      return;
    }
    if (target instanceof HTMLInputElement && target.dataset.edited !== "true") event.preventDefault();
  });
}

export function typeLabel(type) {
  return { approval: "Approval", selection: "Selection", form: "Form", "text-input": "Text", freeform: "JSON" }[type] || type;
}

function isDismissed(response) {
  return Boolean(response && typeof response === "object" && response[DISMISSED] === true);
}

function statusBadge(review) {
  const dismissed = review.status === "completed" && isDismissed(review.response);
  const text = dismissed ? "Dismissed"
    : { pending: "Pending", completed: "Answered", expired: "Expired" }[review.status] || review.status;
  const badge = h("span", { class: `badge badge-${dismissed ? "dismissed" : review.status}` }, text);
  if (review.status === "pending" && review.expiresAt) {
    return h("span", { class: "review-meta" }, badge, " · expires ", timeEl(review.expiresAt, { withDate: true }));
  }
  return badge;
}

/** The signed-in user's vote on a quorum review, if they cast one. */
function myVote(review) {
  const current = session.load();
  const me = current && current.user ? current.user.id : null;
  return (review.votes || []).find((v) => v.userId === me) || null;
}

/** Who voted what on a quorum review, and how many approvals of how many needed. */
function quorumBox(review) {
  const { approvals, approved = 0 } = review.quorum;
  const votes = Array.isArray(review.votes) ? review.votes : [];
  return h("div", { class: "quorum", dataset: { approvals: String(approvals), approved: String(approved) } },
    h("p", { class: "quorum-count" },
      h("strong", {}, `${approved} of ${approvals}`), ` approval${approvals === 1 ? "" : "s"} needed`),
    votes.length
      ? h("ul", { class: "votes", "aria-label": "Votes" }, votes.map((v) => h("li", { class: "vote", dataset: { voter: v.email } },
        h("span", { class: "voter" }, v.email), " ", answerChip(review, v.response),
        v.response && typeof v.response.comment === "string" ? h("q", { class: "vote-comment" }, v.response.comment) : null,
        " ", timeEl(v.votedAt))))
      : h("p", { class: "muted" }, "No votes yet."));
}

/** An approval answer as its option's chip (a dismissal as "Dismissed"). */
function answerChip(review, response) {
  if (isDismissed(response)) return h("span", { class: "chip" }, "Dismissed");
  const payload = review.payload || {};
  const options = approvalOptions(payload);
  const chosen = response ? response.selectedOption : null;
  const opt = options.find((o) => o.id === chosen);
  return h("span", { class: `chip chip-${styleOf(opt)}` }, opt ? opt.label : String(chosen ?? "—"));
}

function outcome(review) {
  if (review.status === "expired") {
    if (review.defaultResponse !== null && review.defaultResponse !== undefined) {
      return h("div", { class: "review-outcome review-default" },
        h("p", {}, "Nobody answered before the deadline: the agent's default applied."),
        responseSummary({ ...review, response: review.defaultResponse }));
    }
    return h("p", { class: "review-outcome" }, "Nobody answered before the deadline.");
  }
  const at = review.respondedAt || review.completedAt;
  const when = at ? [" at ", timeEl(at, { withDate: true })] : null;
  const feedback = typeof review.feedback === "string" && review.feedback.trim()
    ? h("div", { class: "feedback-shown" },
      h("span", { class: "feedback-label" }, "Feedback for the agent"),
      h("p", { class: "feedback-text" }, review.feedback))
    : null;
  if (isDismissed(review.response)) {
    const label = (review.payload || {}).dismissLabel;
    return h("div", { class: "review-outcome" },
      h("p", { class: "answer answer-dismissed" }, "Dismissed", when,
        typeof label === "string" && label ? [" (", h("q", {}, label), ")"] : null),
      feedback);
  }
  return h("div", { class: "review-outcome" },
    h("p", {}, review.quorum ? "Decided by the votes" : "Answered", when, ":"),
    responseSummary(review),
    feedback,
  );
}

function responseSummary(review) {
  const r = review.response;
  const payload = review.payload || {};
  if (review.type === "approval" && r && r.selectedOption) {
    const options = approvalOptions(payload);
    const opt = options.find((o) => o.id === r.selectedOption);
    const edit = editOf(payload);
    const edited = edit && isObject(r.editedArgs) ? r.editedArgs : null;
    return h("div", { class: "answer" },
      h("span", { class: `chip chip-${styleOf(opt)}` }, opt ? opt.label : r.selectedOption),
      edited ? [" ", h("span", { class: "muted" }, "with edited arguments"), diffList(edit.args, edited)] : null,
      r.comment ? h("p", { class: "answer-comment" }, r.comment) : null);
  }
  if (review.type === "selection" && r && Array.isArray(r.selectedIds)) {
    const labels = new Map(selectionItems(payload).items.map((o) => [o.id, o.label]));
    return h("ul", { class: "answer chips" }, r.selectedIds.map((id) => h("li", { class: "chip" }, labels.get(id) || id)));
  }
  if (review.type === "text-input" && r && typeof r.text === "string") {
    if (payload.markdown) {
      const quote = h("blockquote", { class: "answer md" });
      // renderMarkdown escapes the source before adding its fixed set of tags.
      quote.innerHTML = renderMarkdown(r.text);
      return quote;
    }
    return h("blockquote", { class: "answer" }, r.text);
  }
  if (review.type === "form" && r && typeof r === "object" && !Array.isArray(r)) {
    const specs = new Map((payload.fields || []).map((f) => [f.name, f]));
    // Fields in the form's order, then anything else the response holds.
    const names = [...specs.keys()].filter((k) => k in r).concat(Object.keys(r).filter((k) => !specs.has(k)));
    return h("dl", { class: "answer answer-form" },
      names.map((k) => {
        const spec = specs.get(k);
        return [h("dt", {}, (spec && spec.label) || k), h("dd", { dataset: { field: k } }, formatFieldValue(spec, r[k]))];
      }));
  }
  return h("pre", { class: "answer json" }, JSON.stringify(r, null, 2));
}

function formatFieldValue(spec, v) {
  const type = spec ? spec.type || "text" : null;
  // A password never reaches a screen: the API already answers "***REDACTED***".
  if (type === "password") return v === null || v === undefined || v === "" ? "—" : MASK;
  if (type === "select") {
    const opt = selectOptions(spec).find((o) => o.value === v);
    if (opt) return opt.label;
  }
  if (type === "range" && spec.unit && typeof v === "number") return `${v} ${spec.unit}`;
  if (type === "datetime" && typeof v === "string") return v.replace("T", " ");
  return formatValue(v);
}

function formatValue(v) {
  if (typeof v === "boolean") return v ? "Yes" : "No";
  if (v === null || v === undefined) return "—";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function styleOf(option) {
  return option && STYLES.has(option.style) ? option.style : "default";
}

/** A select field's options as {value, label}: the API stores them so; older ones were {id, label}. */
function selectOptions(spec) {
  return (Array.isArray(spec.options) ? spec.options : []).map((o) => {
    if (typeof o === "string") return { value: o, label: o };
    const value = String(o.value ?? o.id ?? "");
    return { value, label: o.label === undefined || o.label === null ? value : String(o.label) };
  });
}

/** Tie a field's error message to the field (aria-describedby) while it shows, and only then: an
 * empty one still adds its "⚠" to what a screen reader says of the field. */
function describes(error, on) {
  const target = document.getElementById(error.dataset.describes || error.dataset.for || "");
  if (!target) return;
  const ids = (target.getAttribute("aria-describedby") || "").split(/\s+/).filter((id) => id && id !== error.id);
  if (on) ids.unshift(error.id);
  if (ids.length) target.setAttribute("aria-describedby", ids.join(" "));
  else target.removeAttribute("aria-describedby");
}

function errorFor(fields, apiField, inputId) {
  const el = h("p", { class: "field-error", id: `${inputId}-error`, role: "alert", hidden: true, dataset: { for: inputId, field: apiField } });
  fields.set(apiField, el);
  return el;
}

function submitButton(label, fallback) {
  const text = typeof label === "string" && label.trim() ? label : fallback;
  return h("button", { type: "submit", class: "btn btn-primary" }, text);
}

/** The optional note for the agent: hidden behind a small toggle until wanted. */
function feedbackBox() {
  const id = newId("feedback");
  // At most 4000 characters, the API's limit; any other refusal shows as the card's error.
  const area = h("textarea", { id, name: "feedback", rows: 2, maxlength: 4000 });
  const element = h("div", { class: "field feedback", id: `${id}-box`, hidden: true },
    h("label", { for: id, class: "label" }, "Feedback for the agent ", h("span", { class: "optional" }, "(optional)")),
    area);
  const toggle = h("button", {
    type: "button", class: "btn btn-small btn-quiet feedback-toggle", "aria-expanded": "false", "aria-controls": `${id}-box`,
  }, "Add feedback");
  const open = () => {
    element.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    toggle.textContent = "Remove feedback";
  };
  // Closing it again means "no feedback after all": a hidden box is not sent.
  const close = () => {
    element.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    toggle.textContent = "Add feedback";
  };
  toggle.addEventListener("click", () => {
    if (element.hidden) {
      open();
      area.focus();
    } else close();
  });
  // Esc closes what the toggle opened and gives the focus back to it.
  element.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing) return;
    event.preventDefault();
    close();
    toggle.focus();
  });
  return { element, toggle, open, value: () => (element.hidden ? "" : area.value.trim()) };
}

function initialValue(spec) {
  if (spec.defaultValue !== undefined && spec.defaultValue !== null) return spec.defaultValue;
  if (spec.default !== undefined && spec.default !== null) return spec.default; // older payloads
  return undefined;
}

function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// --- one builder per review type: {element, actions, collect(submitter) -> response} ---

const INPUT_TYPES = {
  text: "text", number: "number", email: "email", url: "url", date: "date", time: "time",
  datetime: "datetime-local", password: "password",
};

const BUILDERS = {
  approval(payload, fields) {
    const options = approvalOptions(payload);
    const commentId = newId("comment");
    const comment = payload.allowComment === true
      ? h("textarea", { id: commentId, name: "comment", rows: 2, maxlength: 4000 })
      : null;
    const element = h("div", { class: "approval" },
      comment ? [
        h("label", { for: commentId, class: "label" }, "Comment ", h("span", { class: "optional" }, "(optional)")),
        comment,
        errorFor(fields, "response.comment", commentId),
      ] : null,
      errorFor(fields, "response.selectedOption", `${commentId}-choice`),
    );
    const edit = editOf(payload);
    const editor = edit ? argsEditor(edit, fields) : null;
    if (editor) element.prepend(editor.element);
    const actions = options.map((o) => h("button", {
      type: "submit", class: `btn btn-${styleOf(o)}`, name: "selectedOption", value: o.id,
    }, o.label));
    return {
      element,
      actions,
      collect(submitter) {
        const text = comment ? comment.value.trim() : "";
        const selected = submitter && submitter.name === "selectedOption" ? submitter.value : null;
        if (!selected) throw Object.assign(new Error("choose one of the buttons"), { field: "response.selectedOption" });
        const out = text ? { selectedOption: selected, comment: text } : { selectedOption: selected };
        const option = options.find((o) => o.id === selected);
        if (editor && option && approves(option)) {
          const edited = editor.value(); // throws for JSON that does not parse
          if (!sameJson(edited, edit.args)) out.editedArgs = edited;
        }
        return out;
      },
    };
  },

  selection(payload, fields) {
    const { items, multi } = selectionItems(payload);
    const group = newId("sel");
    const legendId = `${group}-legend`;
    const element = h("fieldset", { class: "selection", id: group, dataset: { mode: multi ? "multi" : "single" } },
      h("legend", { id: legendId }, multi ? "Choose one or more" : "Choose one"),
      items.map((o) => {
        const id = newId("opt");
        return h("div", { class: "choice" },
          h("input", { type: multi ? "checkbox" : "radio", id, name: group, value: o.id }),
          h("label", { for: id }, h("span", { class: "choice-label" }, o.label),
            o.description ? h("span", { class: "choice-desc" }, o.description) : null));
      }),
      h("p", { class: "field-error", id: `${group}-error`, role: "alert", hidden: true, dataset: { field: "response.selectedIds", describes: group } }),
    );
    fields.set("response.selectedIds", element.querySelector(".field-error"));
    return {
      element,
      actions: [submitButton(payload.submitLabel, "Confirm Selection")],
      collect() {
        return { selectedIds: [...element.querySelectorAll("input:checked")].map((i) => i.value) };
      },
    };
  },

  form(payload, fields) {
    const specs = Array.isArray(payload.fields) ? payload.fields : [];
    const inputs = [];
    const element = h("div", { class: "form-fields" },
      specs.map((spec) => {
        const id = newId("field");
        const common = { id, name: spec.name };
        if (spec.required) {
          common.required = true;
          common["aria-required"] = "true";
        }
        if (spec.placeholder) common.placeholder = spec.placeholder;
        const type = spec.type || "text";
        const initial = initialValue(spec);
        let input;
        let extra = null;
        if (type === "textarea") input = h("textarea", { ...common, rows: 3 });
        else if (type === "select") {
          input = h("select", common, h("option", { value: "" }, "Choose…"),
            selectOptions(spec).map((o) => h("option", { value: o.value }, o.label)));
        } else if (type === "checkbox") input = h("input", { ...common, type: "checkbox" });
        else if (type === "range") {
          const min = isNumber(spec.min) ? spec.min : 0;
          const max = isNumber(spec.max) ? spec.max : 100;
          const step = isNumber(spec.step) ? spec.step : 1;
          input = h("input", { ...common, type: "range", min, max, step });
          // Placet: defaultValue ?? min ?? 0.
          let start = typeof initial === "string" && initial.trim() !== "" ? Number(initial) : initial;
          if (!isNumber(start)) start = isNumber(spec.min) ? spec.min : 0;
          input.value = String(start);
          const unit = typeof spec.unit === "string" && spec.unit ? ` ${spec.unit}` : "";
          const output = h("output", { for: id, class: "range-value", "aria-hidden": "true" });
          const show = () => {
            output.textContent = `${input.value}${unit}`;
            input.setAttribute("aria-valuetext", `${input.value}${unit}`);
          };
          show();
          input.addEventListener("input", show);
          extra = h("div", { class: "range-row" }, input, output);
        } else {
          const attrs = { ...common, type: INPUT_TYPES[type] || "text" };
          if (type === "number") {
            attrs.step = isNumber(spec.step) ? spec.step : "any";
            if (isNumber(spec.min)) attrs.min = spec.min;
            if (isNumber(spec.max)) attrs.max = spec.max;
          }
          if (type === "password") attrs.autocomplete = "new-password";
          if (type === "email") attrs.autocomplete = "off";
          input = h("input", attrs);
        }
        if (initial !== undefined && type !== "range") {
          if (type === "checkbox") input.checked = initial === true || initial === "true";
          else if (type === "datetime" && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(String(initial))) {
            input.value = String(initial).slice(0, 16).replace(" ", "T");
          } else if (type === "time" && /^\d{2}:\d{2}/.test(String(initial))) input.value = String(initial).slice(0, 5);
          else input.value = String(initial);
        }
        inputs.push({ spec, input, type });
        const label = h("label", { for: id, class: "label" }, spec.label || spec.name,
          spec.required ? [" ", h("span", { class: "req", "aria-hidden": "true", title: "required" }, "*")] : null);
        const hint = [];
        if (type === "number" && (isNumber(spec.min) || isNumber(spec.max))) {
          hint.push(h("span", { class: "hint", id: `${id}-range` }, rangeHint(spec)));
        }
        if (spec.description) hint.push(h("span", { class: "hint", id: `${id}-desc` }, spec.description));
        // The field's hints are read with it ("Budget, between 1 and 100").
        if (hint.length) input.setAttribute("aria-describedby", hint.map((el) => el.id).join(" "));
        return h("div", { class: `field field-${type}` },
          type === "checkbox" ? h("div", { class: "check" }, input, label) : [label, extra || input],
          hint, errorFor(fields, `response.${spec.name}`, id));
      }),
    );
    return {
      element,
      actions: [submitButton(payload.submitLabel, "Submit")],
      collect() {
        const out = {};
        for (const { spec, input, type } of inputs) {
          if (type === "checkbox") {
            out[spec.name] = input.checked;
            continue;
          }
          const raw = input.value;
          if (raw === "") continue; // absent: the API says whether it was required
          if (type === "number" || type === "range") {
            const n = Number(raw);
            out[spec.name] = Number.isFinite(n) ? n : raw;
          } else out[spec.name] = raw;
        }
        return out;
      },
    };
  },

  "text-input"(payload, fields) {
    const id = newId("text");
    const markdown = payload.markdown === true;
    const attrs = { id, name: "text", "aria-describedby": `${id}-hint`, required: true, "aria-required": "true" };
    attrs.placeholder = typeof payload.placeholder === "string" && payload.placeholder ? payload.placeholder : "Type your response…";
    const max = Number.isInteger(payload.maxLength) && payload.maxLength > 0 ? payload.maxLength : null;
    const min = Number.isInteger(payload.minLength) && payload.minLength > 0 ? payload.minLength : null;
    if (max) attrs.maxlength = max;
    if (min) attrs.minlength = min;
    const multiline = payload.multiline || markdown;
    const input = multiline ? h("textarea", { ...attrs, rows: markdown ? 6 : 4 }) : h("input", { ...attrs, type: "text" });
    const prefilled = typeof payload.prefill === "string" && payload.prefill !== "";
    if (prefilled) input.value = payload.prefill;
    // A prefilled one-line answer is not sent by Enter until it is edited (sendOnlyWhenMeant).
    const enterHint = prefilled && !multiline
      ? h("span", { class: "hint", id: `${id}-enter` }, "Enter sends once you change the text; the button sends it as it is.")
      : null;
    if (enterHint) input.setAttribute("aria-describedby", `${id}-hint ${id}-enter`);
    let limits = "";
    if (min && max) limits = `${min}–${max} characters`;
    else if (min) limits = `at least ${min} characters`;
    else if (max) limits = `at most ${max} characters`;
    const counter = h("span", { class: "counter", "aria-live": "off" });
    const preview = markdown ? h("div", { class: "md md-preview" }) : null;
    const previewBox = markdown ? h("details", { class: "preview" }, h("summary", {}, "Preview"), preview) : null;
    const refresh = () => {
      counter.textContent = max ? `${input.value.length} / ${max}` : "";
      // renderMarkdown escapes the source before adding its fixed set of tags.
      if (preview && previewBox.open) preview.innerHTML = renderMarkdown(input.value);
    };
    input.addEventListener("input", refresh);
    if (previewBox) previewBox.addEventListener("toggle", refresh);
    refresh();
    const element = h("div", { class: "text-input" },
      h("label", { for: id, class: "label" }, "Your answer ", h("span", { class: "req", "aria-hidden": "true" }, "*")),
      input,
      h("span", { class: "hint", id: `${id}-hint` },
        [markdown ? "Markdown supported" : "", limits].filter(Boolean).join(" · "),
        max && (markdown || limits) ? " · " : "",
        counter),
      enterHint,
      previewBox,
      errorFor(fields, "response.text", id),
    );
    return {
      element,
      actions: [submitButton(payload.submitLabel, "Submit")],
      collect: () => ({ text: input.value.trim() }),
    };
  },

  freeform(payload, fields) {
    const id = newId("json");
    const editor = h("textarea", {
      id, name: "json", rows: 6, class: "code", spellcheck: "false",
    });
    editor.value = "{\n  \n}";
    const shown = Object.keys(payload).length ? h("details", { class: "payload" },
      h("summary", {}, "Request payload"), h("pre", { class: "json" }, JSON.stringify(payload, null, 2))) : null;
    const element = h("div", { class: "freeform" },
      shown,
      h("label", { for: id, class: "label" }, "Response (JSON)"),
      editor,
      errorFor(fields, "response", id),
    );
    return {
      element,
      actions: [submitButton(payload.submitLabel, "Submit")],
      collect() {
        try {
          return JSON.parse(editor.value);
        } catch (err) {
          throw Object.assign(new Error(`Invalid JSON: ${err.message}`), { field: "response" });
        }
      },
    };
  },
};

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** `payload.edit` when the review offers its action for editing, else null. */
function editOf(payload) {
  const edit = payload.edit;
  return isObject(edit) && isObject(edit.args) ? edit : null;
}

/** JSON with sorted keys: two values are the same arguments when these agree. */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  return JSON.stringify(v);
}

function sameJson(a, b) {
  return canonical(a) === canonical(b);
}

function shownValue(v) {
  if (v === undefined) return "(none)";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** What changed between the proposed and the edited arguments, key by key: old → new. */
function diffList(before, after) {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  const changed = keys.filter((k) => !sameJson(before[k], after[k]));
  if (!changed.length) return h("p", { class: "edit-diff-none muted" }, "No changes: approving sends the arguments as proposed.");
  return h("ul", { class: "edit-diff", "aria-label": "Changed arguments" }, changed.map((k) => h("li", { dataset: { key: k } },
    h("code", {}, k), ": ",
    h("del", {}, shownValue(before[k])), " → ", h("ins", {}, shownValue(after[k])))));
}

const EDIT_TYPES = new Set(["string", "number", "integer", "boolean"]);

/** The schema's properties when it is a flat object of primitive ones that covers every
 * proposed argument (a form can show it); else null (the JSON editor). */
function flatProperties(schema, args) {
  if (!isObject(schema) || !isObject(schema.properties)) return null;
  if (schema.type !== undefined && schema.type !== "object") return null;
  const props = Object.entries(schema.properties);
  if (!props.length || props.length > 50) return null;
  for (const [, spec] of props) {
    if (!isObject(spec)) return null;
    if (Array.isArray(spec.enum)) {
      if (!spec.enum.length || !spec.enum.every((v) => v === null || ["string", "number", "boolean"].includes(typeof v))) return null;
    } else if (!EDIT_TYPES.has(spec.type)) return null;
  }
  if (Object.keys(args).some((k) => !(k in schema.properties))) return null;
  return props;
}

/** The editor of an action's arguments: {element, value() -> edited arguments}. */
function argsEditor(edit, fields) {
  const args = edit.args;
  const props = flatProperties(edit.schema, args);
  const required = new Set(isObject(edit.schema) && Array.isArray(edit.schema.required) ? edit.schema.required : []);
  const groupId = newId("edit");
  const diffBox = h("div", { class: "edit-changes", id: `${groupId}-changes` });
  let value;
  let body;
  if (props) {
    const readers = [];
    body = h("div", { class: "form-fields" }, props.map(([name, spec]) => {
      const id = newId("arg");
      const initial = args[name];
      const label = typeof spec.title === "string" && spec.title ? spec.title : name;
      let input;
      let read;
      if (Array.isArray(spec.enum)) {
        input = h("select", { id, name: `edit-${name}` },
          initial === undefined ? h("option", { value: "" }, "Choose…") : null,
          spec.enum.map((v, i) => h("option", { value: String(i) }, shownValue(v))));
        const at = spec.enum.findIndex((v) => sameJson(v, initial));
        if (at >= 0) input.value = String(at);
        read = () => (input.value === "" ? undefined : spec.enum[Number(input.value)]);
      } else if (spec.type === "boolean") {
        input = h("input", { id, name: `edit-${name}`, type: "checkbox" });
        input.checked = initial === true;
        read = () => (initial === undefined && !input.checked ? undefined : input.checked);
      } else if (spec.type === "number" || spec.type === "integer") {
        const attrs = { id, name: `edit-${name}`, type: "number", step: spec.type === "integer" ? 1 : "any" };
        if (isNumber(spec.minimum)) attrs.min = spec.minimum;
        if (isNumber(spec.maximum)) attrs.max = spec.maximum;
        input = h("input", attrs);
        if (initial !== undefined && initial !== null) input.value = String(initial);
        read = () => {
          if (input.value === "") return undefined;
          const n = Number(input.value);
          return Number.isFinite(n) ? n : input.value;
        };
      } else {
        const attrs = { id, name: `edit-${name}`, type: "text" };
        if (Number.isInteger(spec.maxLength)) attrs.maxlength = spec.maxLength;
        input = h("input", attrs);
        if (initial !== undefined && initial !== null) input.value = String(initial);
        // An argument that was absent stays absent while its field is empty.
        read = () => (input.value === "" && initial === undefined ? undefined : input.value);
      }
      if (required.has(name)) input.setAttribute("aria-required", "true");
      readers.push([name, read]);
      const hint = typeof spec.description === "string" && spec.description
        ? h("span", { class: "hint", id: `${id}-desc` }, spec.description) : null;
      if (hint) input.setAttribute("aria-describedby", hint.id);
      const labelEl = h("label", { for: id, class: "label" }, label,
        required.has(name) ? [" ", h("span", { class: "req", "aria-hidden": "true", title: "required" }, "*")] : null);
      return h("div", { class: `field field-arg` },
        spec.type === "boolean" ? h("div", { class: "check" }, input, labelEl) : [labelEl, input],
        hint, errorFor(fields, `response.editedArgs.${name}`, id));
    }));
    value = () => {
      const out = {};
      for (const [name, read] of readers) {
        const v = read();
        if (v !== undefined) out[name] = v;
      }
      return out;
    };
  } else {
    const id = newId("args");
    const area = h("textarea", { id, name: "edit-args", rows: 6, class: "code", spellcheck: "false" });
    area.value = JSON.stringify(args, null, 2);
    body = [h("label", { for: id, class: "label" }, "Arguments (JSON)"), area];
    value = () => {
      let parsed;
      try {
        parsed = JSON.parse(area.value);
      } catch (err) {
        throw Object.assign(new Error(`Invalid JSON: ${err.message}`), { field: "response.editedArgs" });
      }
      if (!isObject(parsed)) throw Object.assign(new Error("The arguments must be a JSON object"), { field: "response.editedArgs" });
      return parsed;
    };
    body.push(errorFor(fields, "response.editedArgs", id));
  }
  const whole = props ? errorFor(fields, "response.editedArgs", groupId) : null;
  const element = h("fieldset", { class: "edit-args", id: groupId },
    h("legend", {}, "Arguments"),
    h("p", { class: "hint" }, "Change them before approving if needed; rejecting ignores any change."),
    body, whole,
    h("div", { class: "edit-diff-box" }, h("p", { class: "label" }, "Changes"), diffBox));
  const refresh = () => {
    let edited;
    try {
      edited = value();
    } catch {
      diffBox.replaceChildren(h("p", { class: "muted" }, "The JSON does not parse yet."));
      return;
    }
    diffBox.replaceChildren(diffList(args, edited));
  };
  element.addEventListener("input", refresh);
  element.addEventListener("change", refresh);
  refresh();
  return { element, value };
}

function rangeHint(spec) {
  if (isNumber(spec.min) && isNumber(spec.max)) return `between ${spec.min} and ${spec.max}`;
  if (isNumber(spec.min)) return `at least ${spec.min}`;
  return `at most ${spec.max}`;
}
