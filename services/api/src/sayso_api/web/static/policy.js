// A channel's policy on its settings page (issue #29 item 9): the rules that answer its reviews
// before a person sees them, edited one rule at a time, saved as a whole (every save is a new
// version), earlier versions to load back, and a dry run of a sample message against the saved
// rules (POST /api/v1/policies/test).
//
// The API names the field at fault in a 422 ("rules[2].match.metadata.amount.$gt"): the message
// is shown under that rule's field, which gets the focus. Match and response are JSON; a rule's
// keys this editor has no control for are kept as they were.

import { announce } from "./announcer.js";
import { api } from "./api.js";
import { h, newId, timeEl } from "./dom.js";

const ACTIONS = [
  ["ask", "Ask a person"],
  ["approve", "Approve"],
  ["reject", "Reject"],
];
const RISKS = ["low", "medium", "high", "critical"];
const REVIEW_TYPES = ["approval", "selection", "form", "text-input", "freeform"];
const EDITED = ["name", "match", "action", "response", "risk"];
const FIELD_LABELS = { name: "Name", match: "Match", action: "Action", response: "Response", risk: "Risk" };

/** "rules[2].match.metadata.amount.$gt" -> {index: 2, key: "match", rest: "metadata.amount.$gt"}. */
export function ruleField(field) {
  const m = /^rules\[(\d+)\](?:\.([^.[]+))?(?:\.(.*))?$/.exec(String(field || ""));
  if (!m) return null;
  return { index: Number(m[1]), key: m[2] || null, rest: m[3] || "" };
}

const MATCH_HINT = "policy-match-hint";
const RESPONSE_HINT = "policy-response-hint";

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** JSON on one line when it is short (a rule's match mostly is), else indented. */
function compact(value) {
  const line = JSON.stringify(value, null, 1).replace(/\n\s*/g, " ");
  return line.length <= 80 ? line : pretty(value);
}

/** A labelled control with a hint (its own, or `sharedHint`, the id of one said once for all
 * rules) and its own error line (shown only while it has one). */
function control(label, input, hint = "", sharedHint = "") {
  const id = input.id || newId("pol");
  input.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  const hintId = hintEl ? hintEl.id : sharedHint;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  if (hintId) input.setAttribute("aria-describedby", hintId);
  const show = (text) => {
    error.textContent = text;
    error.hidden = !text;
    if (text) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", [error.id, hintId].filter(Boolean).join(" "));
    } else {
      input.removeAttribute("aria-invalid");
      if (hintId) input.setAttribute("aria-describedby", hintId);
      else input.removeAttribute("aria-describedby");
    }
  };
  const element = h("div", { class: "field" }, h("label", { for: id, class: "label" }, label), input, hintEl, error);
  return { element, input, show };
}

class RuleEditor {
  constructor(rule, onChange) {
    this.extra = Object.fromEntries(Object.entries(rule).filter(([k]) => !EDITED.includes(k)));
    this.onChange = onChange;
    this.legend = h("legend", {});
    // The long hints are said once above the rules and tied to every rule's field.
    this.fields = {
      name: control("Name (optional)", h("input", { type: "text", maxlength: 100, value: rule.name || "", autocomplete: "off" })),
      match: control("Match (JSON filter)",
        h("textarea", { class: "code", rows: 2, spellcheck: "false" }, compact(rule.match || {})), "", MATCH_HINT),
      action: control("Action", h("select", {}, ACTIONS.map(([v, t]) => h("option", { value: v }, t)))),
      response: control("Response (JSON)",
        h("textarea", { class: "code", rows: 1, spellcheck: "false" }, rule.response ? compact(rule.response) : ""), "", RESPONSE_HINT),
      risk: control("Risk", h("select", {}, h("option", { value: "" }, "No label"), RISKS.map((r) => h("option", { value: r }, r[0].toUpperCase() + r.slice(1))))),
    };
    this.fields.action.input.value = rule.action || "ask";
    this.fields.risk.input.value = rule.risk || "";
    this.general = h("p", { class: "field-error", hidden: true });
    this.up = h("button", { type: "button", class: "btn btn-small" }, "Move up");
    this.down = h("button", { type: "button", class: "btn btn-small" }, "Move down");
    this.remove = h("button", { type: "button", class: "btn btn-small btn-danger" }, "Remove");
    this.el = h("fieldset", { class: "rule" }, this.legend,
      h("div", { class: "rule-grid" }, this.fields.name.element, this.fields.action.element, this.fields.risk.element),
      this.fields.match.element, this.fields.response.element, this.general,
      h("div", { class: "actions" }, this.up, this.down, this.remove));
    this.fields.action.input.addEventListener("change", () => this.syncAction());
    this.el.addEventListener("input", () => onChange());
    this.syncAction();
  }

  /** The response is only for approve and reject. */
  syncAction() {
    this.fields.response.element.hidden = this.fields.action.input.value === "ask";
  }

  number(index) {
    this.index = index;
    const name = this.fields.name.input.value.trim();
    this.legend.textContent = `Rule ${index + 1}${name ? `: ${name}` : ""}`;
    this.up.setAttribute("aria-label", `Move rule ${index + 1} up`);
    this.down.setAttribute("aria-label", `Move rule ${index + 1} down`);
    this.remove.setAttribute("aria-label", `Remove rule ${index + 1}`);
  }

  clearErrors() {
    for (const f of Object.values(this.fields)) f.show("");
    this.general.hidden = true;
  }

  /** The error at `key` (a field of the rule, or null for the rule as a whole). */
  showError(key, text) {
    const f = key && this.fields[key];
    if (f && !f.element.hidden) {
      f.show(text);
      f.input.focus();
      return;
    }
    this.general.textContent = key ? `${FIELD_LABELS[key] || key}: ${text}` : text;
    this.general.hidden = false;
    this.fields.match.input.focus();
  }

  /** The rule as the API takes it; a JSON field that does not parse throws {key, message}. */
  value() {
    const rule = { ...this.extra };
    const name = this.fields.name.input.value.trim();
    if (name) rule.name = name;
    rule.match = this.json("match", "{}");
    rule.action = this.fields.action.input.value;
    if (rule.action !== "ask") {
      const response = this.json("response", "");
      if (response !== undefined) rule.response = response;
    }
    const risk = this.fields.risk.input.value;
    if (risk) rule.risk = risk;
    return rule;
  }

  json(key, empty) {
    const text = this.fields[key].input.value.trim() || empty;
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw Object.assign(new Error(`not valid JSON (${err.message})`), { key, editor: this });
    }
  }
}

export function policySection(agent) {
  const base = `/api/v1/agents/${encodeURIComponent(agent.id)}/policy`;
  const state = h("p", { class: "hint policy-version" }, "Loading…");
  const list = h("div", { class: "rules" });
  const general = h("p", { class: "form-error", role: "alert", hidden: true });
  const saved = h("p", { class: "result result-ok", role: "status", hidden: true });
  const add = h("button", { type: "button", class: "btn" }, "Add rule");
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save policy");
  const form = h("form", { class: "policy-form", novalidate: true, "aria-labelledby": "pol-title" },
    list, h("div", { class: "actions" }, add, save), general, saved);
  let editors = [];
  let dirty = false;
  const versions = h("div", { class: "table-wrap" });
  const versionsBox = h("details", { class: "policy-versions" }, h("summary", {}, "Earlier versions"), versions);
  const dry = dryRunPane(agent, () => dirty);

  const changed = () => {
    dirty = true;
    saved.hidden = true;
    editors.forEach((e, i) => e.number(i));
  };
  const render = () => {
    editors.forEach((e, i) => e.number(i));
    list.replaceChildren(...(editors.length ? editors.map((e) => e.el)
      : [h("p", { class: "muted" }, "No rules: every review waits for a person (unless the account's policy answers it).")]));
  };
  const editorFor = (rule) => {
    const e = new RuleEditor(rule, changed);
    e.up.addEventListener("click", () => move(e, -1));
    e.down.addEventListener("click", () => move(e, 1));
    e.remove.addEventListener("click", () => {
      const at = editors.indexOf(e);
      editors.splice(at, 1);
      changed();
      render();
      announce(`Rule ${at + 1} removed`);
      const next = editors[Math.min(at, editors.length - 1)];
      (next ? next.fields.name.input : add).focus();
    });
    return e;
  };
  const move = (e, step) => {
    const at = editors.indexOf(e);
    const to = at + step;
    if (to < 0 || to >= editors.length) return;
    editors.splice(at, 1);
    editors.splice(to, 0, e);
    changed();
    render();
    (step < 0 ? e.up : e.down).focus();
    announce(`Rule moved to position ${to + 1}`);
  };
  const show = (rules) => {
    editors = rules.map(editorFor);
    render();
  };
  const describe = (policy) => {
    state.replaceChildren(...(policy.version
      ? [`Version ${policy.version}, saved `, timeEl(policy.updatedAt, { withDate: true }), "."]
      : ["No policy saved yet."]));
    state.dataset.version = String(policy.version || 0);
  };

  async function load() {
    try {
      const policy = await api(base);
      describe(policy);
      show(policy.rules || []);
      dirty = false;
      loadVersions();
    } catch (err) {
      state.textContent = err.message;
    }
  }
  async function loadVersions() {
    try {
      const data = (await api(`${base}/versions`, { query: { limit: 20 } })).data || [];
      versions.replaceChildren(data.length ? h("table", { class: "grid" },
        h("caption", { class: "visually-hidden" }, "Saved versions of the policy"),
        h("thead", {}, h("tr", {}, ["Version", "Saved", "Rules", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, data.map((v) => {
          const restore = h("button", { type: "button", class: "btn btn-small", "aria-label": `Load version ${v.version} into the editor` }, "Load into editor");
          restore.addEventListener("click", () => {
            show(v.rules || []);
            dirty = true;
            saved.hidden = true;
            announce(`Version ${v.version} loaded into the editor: save to make it current`);
            (editors[0] ? editors[0].fields.name.input : save).focus();
          });
          return h("tr", { dataset: { version: String(v.version) } }, h("td", {}, String(v.version)),
            h("td", {}, timeEl(v.createdAt, { withDate: true })), h("td", {}, String((v.rules || []).length)),
            h("td", { class: "row-actions" }, restore));
        }))) : h("p", { class: "muted" }, "Nothing saved yet."));
    } catch (err) {
      versions.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }

  add.addEventListener("click", () => {
    const e = editorFor({ match: {}, action: "ask" });
    editors.push(e);
    changed();
    render();
    e.fields.name.input.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    general.hidden = true;
    saved.hidden = true;
    editors.forEach((e) => e.clearErrors());
    let rules;
    try {
      rules = editors.map((e) => e.value());
    } catch (err) {
      err.editor.showError(err.key, err.message);
      return;
    }
    save.disabled = true;
    try {
      const policy = await api(base, { method: "PUT", body: { rules } });
      describe(policy);
      show(policy.rules || []);
      dirty = false;
      saved.textContent = `Saved: version ${policy.version}.`;
      saved.hidden = false;
      loadVersions();
    } catch (err) {
      const at = ruleField(err.field);
      if (err.status === 422 && at && editors[at.index]) {
        // At the rule's field when it has one ("metadata.amount.$gt: must be a number" under
        // Match), else under the rule ("quorum: …").
        const own = at.key && FIELD_LABELS[at.key] ? at.key : null;
        const where = own ? at.rest : [at.key, at.rest].filter(Boolean).join(".");
        editors[at.index].showError(own, where ? `${where}: ${err.message}` : err.message);
      } else {
        general.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
        general.hidden = false;
      }
    } finally {
      save.disabled = false;
    }
  });
  load();
  return h("section", { class: "card policy", "aria-labelledby": "pol-title", dataset: { section: "policy" } },
    h("h2", { id: "pol-title" }, "Policy"),
    h("p", { class: "hint" }, "Rules answer this channel's reviews as they arrive, before a person sees them. The first rule whose match fits decides; when none does, a person is asked (after the account's own rules). Every save is a new version."),
    h("p", { class: "hint", id: MATCH_HINT }, "Match: a filter over the message as the agent sent it (review.type, text, metadata.<path>) with $eq $ne $in $nin $gt $gte $lt $lte $exists $regex $and $or $not; {} matches every message."),
    h("p", { class: "hint", id: RESPONSE_HINT }, 'Response: what approve or reject records, as a reviewer would answer, e.g. {"selectedOption": "approve"}; empty for the review\'s own approve or reject option.'),
    h("p", { class: "hint" }, h("a", { href: `#/audit/${encodeURIComponent(agent.id)}` }, "This channel's audit log"),
      ": every decision and every change to this policy."),
    state, form, versionsBox, dry);
}

/** The dry run: a sample message against the saved rules; says which rule matches and what
 * would happen. */
function dryRunPane(agent, unsaved) {
  const text = control("Message text", h("input", { type: "text", value: "Deploy to staging?", autocomplete: "off" }));
  const type = control("Review type", h("select", {}, REVIEW_TYPES.map((t) => h("option", { value: t }, t))));
  const metadata = control("Metadata (JSON)",
    h("textarea", { class: "code", rows: 2, spellcheck: "false" }, '{"tool": "deploy", "args": {"env": "staging"}}'),
    "As the agent would send it: metadata.tool, metadata.args, metadata.risk…");
  const payload = control("Review payload (JSON)", h("textarea", { class: "code", rows: 2, spellcheck: "false" }, ""),
    "Optional: the review's options, fields or items.");
  const out = h("div", { class: "dry-result", role: "status" });
  const run = h("button", { type: "submit", class: "btn btn-primary" }, "Test");
  const form = h("form", { class: "dry-run", novalidate: true, "aria-labelledby": "dry-title" },
    h("h3", { id: "dry-title" }, "Dry run"),
    h("p", { class: "hint" }, "Which rule a message would match and what would happen, with the saved rules. Nothing is stored or sent."),
    h("div", { class: "rule-grid" }, text.element, type.element), metadata.element, payload.element,
    h("div", { class: "actions" }, run), out);
  const fields = { "message.text": text, "message.review.type": type, "message.metadata": metadata, "message.review.payload": payload };
  const parse = (f) => {
    const raw = f.input.value.trim();
    if (!raw) return undefined;
    try {
      return JSON.parse(raw);
    } catch (err) {
      f.show(`not valid JSON (${err.message})`);
      f.input.focus();
      throw err;
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const f of Object.values(fields)) f.show("");
    out.replaceChildren();
    const message = { review: { type: type.input.value } };
    try {
      const meta = parse(metadata);
      const pay = parse(payload);
      if (meta !== undefined) message.metadata = meta;
      if (pay !== undefined) message.review.payload = pay;
    } catch {
      return;
    }
    if (text.input.value.trim()) message.text = text.input.value;
    run.disabled = true;
    try {
      const r = await api("/api/v1/policies/test", { method: "POST", body: { channelId: agent.id, message } });
      out.replaceChildren(dryResult(r, unsaved()));
    } catch (err) {
      const at = err.field && Object.keys(fields).find((k) => err.field === k || err.field.startsWith(`${k}.`) || err.field.startsWith(`${k}[`));
      if (at) {
        fields[at].show(err.field === at ? err.message : `${err.field.slice(at.length + 1)}: ${err.message}`);
        fields[at].input.focus();
      } else out.replaceChildren(h("p", { class: "form-error" }, err.field ? `${err.field}: ${err.message}` : err.message));
    } finally {
      run.disabled = false;
    }
  });
  return form;
}

function dryResult(r, unsaved) {
  const verb = { approve: "approved", reject: "rejected", ask: "asked of a person" }[r.action] || r.action;
  const rule = r.rule === null || r.rule === undefined ? null
    : `rule ${r.rule + 1}${r.ruleName ? ` (“${r.ruleName}”)` : ""} of the ${r.scope} policy, version ${r.version}`;
  return h("div", { class: `dry-outcome dry-${r.action}`, dataset: { action: r.action, rule: rule ? String(r.rule) : "" } },
    h("p", {}, h("strong", {}, `Would be ${verb}`), rule ? `: ${rule} matches.` : ": no rule matches."),
    r.reason ? h("p", { class: "warning" }, `The matching rule cannot answer it: ${r.reason}`) : null,
    r.risk ? h("p", {}, "Risk: ", h("span", { class: `badge risk risk-${r.risk}` }, r.risk)) : null,
    r.response ? h("pre", { class: "json", "aria-label": "Response recorded" }, pretty(r.response)) : null,
    unsaved ? h("p", { class: "hint" }, "The editor has unsaved changes: this used the saved rules.") : null);
}

/** The channel's remembered approvals still in force ("Approve, and allow the same for 1 h"):
 * what each allows, until when, who made it; the owner revokes one (a member reads the list). */
export function rememberedSection(agent) {
  const base = `/api/v1/agents/${encodeURIComponent(agent.id)}/remembered`;
  const list = h("div", { class: "table-wrap" });
  const out = h("p", { role: "status", class: "result", hidden: true });
  const refresh = h("button", { type: "button", class: "btn btn-small" }, "Refresh");

  async function load() {
    try {
      const items = (await api(base)).data || [];
      list.replaceChildren(items.length ? h("table", { class: "grid remembered" },
        h("caption", { class: "visually-hidden" }, "Remembered approvals"),
        h("thead", {}, h("tr", {}, ["Tool", "Scope", "Until", "Answer", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((r) => {
          const revoke = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Revoke the approval of ${r.tool}` }, "Revoke");
          revoke.addEventListener("click", async () => {
            revoke.disabled = true;
            try {
              await api(`${base}/${encodeURIComponent(r.id)}`, { method: "DELETE" });
              out.className = "result result-ok";
              out.textContent = `Revoked: ${r.tool} is asked again.`;
            } catch (err) {
              out.className = "result result-error";
              out.textContent = err.message;
            }
            out.hidden = false;
            await load();
            refresh.focus();
          });
          return h("tr", { dataset: { rememberedId: r.id } },
            h("td", {}, h("code", {}, r.tool), h("span", { class: "hint" }, `arguments ${r.argsDigest.slice(0, 12)}…`)),
            h("td", {}, r.scope === "run" ? `run ${r.runId}` : "channel"),
            h("td", {}, timeEl(r.expiresAt, { withDate: true })),
            h("td", {}, r.response && r.response.selectedOption ? r.response.selectedOption : "—"),
            h("td", { class: "row-actions" }, revoke));
        }))) : h("p", { class: "muted" }, "None: every tool call is asked (or left to the rules above)."));
    } catch (err) {
      list.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }
  refresh.addEventListener("click", load);
  load();
  return h("section", { class: "card", "aria-labelledby": "rem-title", dataset: { section: "remembered" } },
    h("h2", { id: "rem-title" }, "Remembered approvals"),
    h("p", { class: "hint" }, "An answer \"Approve, and allow the same for 1 h\" approves the same tool with the same arguments in this channel until it ends, without asking. Revoke one to be asked again."),
    list, h("div", { class: "actions" }, refresh), out);
}
