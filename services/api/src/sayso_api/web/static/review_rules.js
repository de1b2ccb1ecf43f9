// The review rules the inbox applies before it sends an answer: the twin of the API's
// sayso_common.reviews (its validate_response, Selection.read, DEFAULT_APPROVAL_OPTIONS) and of
// sayso_common.quorum.option_approves. The API stays the judge: checkResponse only spares a
// round trip, giving the field and message the API would give. Where the inbox cannot tell
// (an edited action's JSON Schema, ISO date forms other than the plain ones) it answers null and
// leaves the answer to the API.
//
// Both sides run one table of cases, tests/cases/review_responses.json: tests/test_review_cases.py
// (the Python rules) and tests/web/test_review_cases.py (this module, in Chromium). A rule changed
// on one side only fails one of them.

export const MAX_COMMENT = 4000;
export const MAX_TEXT = 20000;
export const DISMISSED = "_dismissed";
// As Placet's review card: `payload.options ?? [Approve, Reject]`.
export const DEFAULT_APPROVAL = Object.freeze([
  Object.freeze({ id: "approve", label: "Approve", style: "primary" }),
  Object.freeze({ id: "reject", label: "Reject", style: "danger" }),
]);
const APPROVING_IDS = new Set(["approve", "approved", "accept", "accepted", "yes", "ok"]);
const APPROVING_STYLES = new Set(["primary", "success"]);
// Python's whitespace (str.isspace, and \s in its patterns), which is not JavaScript's \s.
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const NOT_BLANK = new RegExp(`[^${WS}]`, "u");
// Python's `$` also matches before one final newline: so do these.
const EMAIL = new RegExp(`^[^@${WS}]+@[^@${WS}]+\\.[^@${WS}]+\\n?$`, "u");
// Unicode case folding, as Python's IGNORECASE ("ſ" is an "s").
const URL_SHAPE = new RegExp(`^https?://[^${WS}/$.?#][^${WS}]*\\n?$`, "iu");

/** An approval's options, or the two defaults when it has none. */
export function approvalOptions(payload) {
  const options = (payload || {}).options;
  return Array.isArray(options) && options.length ? options : DEFAULT_APPROVAL;
}

/** Whether an approval option approves (the quorum's rule). */
export function approves(option) {
  return APPROVING_IDS.has(option.id) || APPROVING_STYLES.has(option.style);
}

/** Placet's selection (`items`, `mode`) or the older stored shape (`options`, `multiple`). */
export function selectionItems(payload) {
  const p = payload || {};
  if (Object.hasOwn(p, "items")) return { items: Array.isArray(p.items) ? p.items : [], multi: p.mode === "multi" };
  return { items: Array.isArray(p.options) ? p.options : [], multi: Boolean(p.multiple) };
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

// Python's len(): code points, not UTF-16 units.
function length(s) {
  return [...s].length;
}

// Python's repr() of a plain string, as its messages quote ids.
function repr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t");
  if (quote === "'") out = out.replace(/'/g, "\\'");
  return quote + out + quote;
}

class Refusal {
  constructor(field, message) {
    this.field = field;
    this.message = message;
  }
}

function refuse(field, message) {
  throw new Refusal(field, message);
}

// Decided by the API (the inbox cannot tell): stop checking, send it.
class Defer {}

function noExtra(response, allowed) {
  const extra = Object.keys(response).filter((k) => !allowed.has(k)).sort();
  if (extra.length) refuse(`response.${extra[0]}`, "is not a field of this review type");
}

function optionalText(value, field, max) {
  if (value === null || value === undefined) return;
  if (typeof value !== "string" || !NOT_BLANK.test(value)) refuse(field, "must be a non-empty string");
  if (length(value) > max) refuse(field, `must be at most ${max} characters`);
}

function approval(payload, response) {
  const ids = approvalOptions(payload).map((o) => o.id);
  const selected = response.selectedOption;
  if (typeof selected !== "string" || !ids.includes(selected)) {
    refuse("response.selectedOption", `must be one of ${ids.join(", ")}`);
  }
  optionalText(response.comment, "response.comment", MAX_COMMENT);
  noExtra(response, new Set(["selectedOption", "comment", "editedArgs"]));
  // Edited arguments are checked against the review's JSON Schema: the API's job.
  if (Object.hasOwn(response, "editedArgs")) throw new Defer();
}

function selection(payload, response) {
  const { items, multi } = selectionItems(payload);
  const known = new Set(items.map((o) => o.id));
  const chosen = response.selectedIds;
  if (!Array.isArray(chosen) || !chosen.length || !chosen.every((c) => typeof c === "string")) {
    refuse("response.selectedIds", "must be a non-empty list of option ids");
  }
  const unknown = chosen.filter((c) => !known.has(c));
  if (unknown.length) refuse("response.selectedIds", `unknown option id ${repr(unknown[0])}`);
  if (new Set(chosen).size !== chosen.length) refuse("response.selectedIds", "ids must not repeat");
  if (!multi && chosen.length !== 1) refuse("response.selectedIds", "exactly one option must be selected");
  noExtra(response, new Set(["selectedIds"]));
}

function daysIn(year, month) {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

// The plain ISO forms, checked exactly; true/false when recognised, null when not.
function plainDate(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return y >= 1 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(y, mo);
}

function plainTime(s) {
  const m = /^(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?$/.exec(s);
  if (!m) return null;
  return Number(m[1]) <= 23 && Number(m[2]) <= 59 && (m[3] === undefined || Number(m[3]) <= 59);
}

function plainDatetime(s) {
  const date = plainDate(s);
  if (date !== null) return date;
  const m = /^(\d{4}-\d{2}-\d{2})[T ](.*)$/.exec(s);
  if (!m) return null;
  const time = plainTime(m[2]);
  return time === null ? null : plainDate(m[1]) && time;
}

// Python's fromisoformat: a string of at most 40 characters. Forms other than the plain ones
// (week dates, basic forms, offsets) are left to the API; a string that cannot start one is not.
const TEMPORAL = {
  date: { plain: plainDate, shape: "YYYY-MM-DD", start: /^\d{4}/ },
  time: { plain: plainTime, shape: "HH:MM", start: /^[\dT]/ },
  datetime: { plain: plainDatetime, shape: "YYYY-MM-DDTHH:MM", start: /^\d{4}/ },
};

function temporal(type, value, where) {
  const rule = TEMPORAL[type];
  const message = type === "date" ? `must be a date (${rule.shape})` : `must be a ${type} (${rule.shape})`;
  if (typeof value !== "string" || length(value) > 40 || !rule.start.test(value)) refuse(where, message);
  const plain = rule.plain(value);
  if (plain === null) throw new Defer();
  if (!plain) refuse(where, message);
}

function field(spec, where, value) {
  const type = spec.type;
  if (type === "text" || type === "textarea" || type === "password") {
    if (typeof value !== "string") refuse(where, "must be a string");
    if (length(value) > MAX_TEXT) refuse(where, `must be at most ${MAX_TEXT} characters`);
  } else if (type === "number" || type === "range") {
    if (!isNumber(value)) refuse(where, "must be a number");
    if (spec.min !== null && spec.min !== undefined && value < spec.min) refuse(where, `must be at least ${spec.min}`);
    if (spec.max !== null && spec.max !== undefined && value > spec.max) refuse(where, `must be at most ${spec.max}`);
  } else if (type === "email") {
    if (typeof value !== "string" || !EMAIL.test(value)) refuse(where, "must be an e-mail address");
  } else if (type === "url") {
    if (typeof value !== "string" || !URL_SHAPE.test(value)) refuse(where, "must be an http(s) URL");
  } else if (type === "select") {
    const ids = (spec.options || []).map((o) => (Object.hasOwn(o, "value") ? o.value : o.id));
    if (!ids.includes(value)) refuse(where, `must be one of ${ids.join(", ")}`);
  } else if (type === "checkbox") {
    if (typeof value !== "boolean") refuse(where, "must be true or false");
  } else if (type in TEMPORAL) {
    temporal(type, value, where);
  }
}

function form(payload, response) {
  const fields = payload.fields || [];
  noExtra(response, new Set(fields.map((f) => f.name)));
  for (const spec of fields) {
    const value = response[spec.name];
    const where = `response.${spec.name}`;
    if (value === null || value === undefined || value === "") {
      if (spec.required) refuse(where, `${Object.hasOwn(spec, "label") ? spec.label : spec.name} is required`);
      continue;
    }
    // A field only the API can judge ends the check: the API names the first field at fault.
    field(spec, where, value);
  }
}

function textInput(payload, response) {
  const text = response.text;
  if (typeof text !== "string") refuse("response.text", "must be a string");
  const shortest = Math.max(payload.minLength || 0, 1);
  const longest = Math.min(payload.maxLength || MAX_TEXT, MAX_TEXT);
  if (length(text) < shortest) refuse("response.text", `must be at least ${shortest} characters`);
  if (length(text) > longest) refuse("response.text", `must be at most ${longest} characters`);
  noExtra(response, new Set(["text"]));
}

const TYPES = { approval, selection, form, "text-input": textInput, freeform: () => {} };

/**
 * What the API would refuse in `response` to a review of `type` with `payload`:
 * `{field, message}`, or null when it passes (or when only the API can tell).
 */
export function checkResponse(type, payload, response) {
  const p = payload || {};
  const keys = isObject(response) ? Object.keys(response) : [];
  const dismissal = keys.length === 1 && keys[0] === DISMISSED && (response[DISMISSED] === true || response[DISMISSED] === 1);
  if (dismissal && p.dismissLabel) return null;
  try {
    if (!isObject(response)) refuse("response", "must be an object");
    const rule = TYPES[type];
    if (!rule) refuse("review.type", `unknown review type ${repr(String(type))}`);
    rule(p, response);
    return null;
  } catch (err) {
    if (err instanceof Refusal) return { field: err.field, message: err.message };
    if (err instanceof Defer) return null;
    throw err;
  }
}
