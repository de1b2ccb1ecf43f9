// Review cards: the controls for each of the five review types, the answer, and the outcome.
// A 422 from the API names the field at fault ("response.<name>"); its message is shown next to
// that field. Nothing from the payload is rendered as HTML: labels and descriptions are text.

import { api } from "./api.js";
import { h, newId, timeEl } from "./dom.js";

const STYLES = new Set(["primary", "secondary", "success", "danger", "warning", "default"]);

/**
 * The card for `message.review`. `onAnswered(message)` gets the updated message after a
 * successful answer (or after a 409, the current state).
 */
export function reviewCard(message, { onAnswered }) {
  const review = message.review;
  const card = h("section", {
    class: `review review-${review.status}`,
    "aria-label": `${typeLabel(review.type)} review`,
    dataset: { reviewType: review.type, reviewStatus: review.status },
  });
  card.append(h("header", { class: "review-head" },
    h("span", { class: "review-type" }, typeLabel(review.type)),
    statusBadge(review),
  ));
  if (review.status !== "pending") {
    card.append(outcome(review));
    return card;
  }
  const general = h("p", { class: "form-error", role: "alert", hidden: true });
  const form = h("form", { class: "review-form", novalidate: true });
  const fields = new Map(); // API field name -> error element
  const controls = BUILDERS[review.type](review.payload || {}, fields);
  form.append(controls.element, general);
  card.append(form);

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
    }
  };
  const showError = (field, text) => {
    const el = field && fields.get(field);
    if (el) {
      el.textContent = text;
      el.hidden = false;
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

  const submit = async (response) => {
    clearErrors();
    setBusy(true);
    try {
      const updated = await api(`/api/v1/reviews/${encodeURIComponent(message.id)}/respond`, {
        method: "POST",
        body: { response },
      });
      onAnswered(updated);
    } catch (err) {
      setBusy(false);
      if (err.status === 409) {
        // Someone (another tab, another person) answered first, or it expired: show what is true.
        try {
          const current = await api(`/api/v1/reviews/${encodeURIComponent(message.id)}`, {
            query: { channel: message.channelId },
          });
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
    let response;
    try {
      response = controls.collect(submitter);
    } catch (err) {
      // Client-side problems that the API cannot report (e.g. JSON that does not parse).
      showError(err.field || null, err.message);
      return;
    }
    submit(response);
  });
  return card;
}

export function typeLabel(type) {
  return { approval: "Approval", selection: "Selection", form: "Form", "text-input": "Text", freeform: "JSON" }[type] || type;
}

function statusBadge(review) {
  const text = { pending: "Pending", completed: "Answered", expired: "Expired" }[review.status] || review.status;
  const badge = h("span", { class: `badge badge-${review.status}` }, text);
  if (review.status === "pending" && review.expiresAt) {
    return h("span", { class: "review-meta" }, badge, " · expires ", timeEl(review.expiresAt, { withDate: true }));
  }
  return badge;
}

function outcome(review) {
  if (review.status === "expired") {
    return h("p", { class: "review-outcome" }, "Nobody answered before the deadline.");
  }
  return h("div", { class: "review-outcome" },
    h("p", {}, "Answered", review.respondedAt ? [" at ", timeEl(review.respondedAt, { withDate: true })] : null, ":"),
    responseSummary(review),
  );
}

function responseSummary(review) {
  const r = review.response;
  const payload = review.payload || {};
  if (review.type === "approval" && r && r.selectedOption) {
    const opt = (payload.options || []).find((o) => o.id === r.selectedOption);
    return h("div", { class: "answer" },
      h("span", { class: `chip chip-${styleOf(opt)}` }, opt ? opt.label : r.selectedOption),
      r.comment ? h("p", { class: "answer-comment" }, r.comment) : null);
  }
  if (review.type === "selection" && r && Array.isArray(r.selectedIds)) {
    const labels = new Map((payload.options || []).map((o) => [o.id, o.label]));
    return h("ul", { class: "answer chips" }, r.selectedIds.map((id) => h("li", { class: "chip" }, labels.get(id) || id)));
  }
  if (review.type === "text-input" && r && typeof r.text === "string") {
    return h("blockquote", { class: "answer" }, r.text);
  }
  if (review.type === "form" && r && typeof r === "object") {
    const labels = new Map((payload.fields || []).map((f) => [f.name, f.label || f.name]));
    return h("dl", { class: "answer answer-form" },
      Object.entries(r).map(([k, v]) => [h("dt", {}, labels.get(k) || k), h("dd", {}, formatValue(v))]));
  }
  return h("pre", { class: "answer json" }, JSON.stringify(r, null, 2));
}

function formatValue(v) {
  if (typeof v === "boolean") return v ? "Yes" : "No";
  if (v === null || v === undefined) return "—";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function styleOf(option) {
  return option && STYLES.has(option.style) ? option.style : "default";
}

function errorFor(fields, apiField, inputId) {
  const el = h("p", { class: "field-error", id: `${inputId}-error`, role: "alert", hidden: true, dataset: { for: inputId, field: apiField } });
  fields.set(apiField, el);
  return el;
}

// --- one builder per review type: {element, collect(submitter) -> response} ---

const BUILDERS = {
  approval(payload, fields) {
    const options = payload.options && payload.options.length ? payload.options : [
      { id: "approve", label: "Approve", style: "primary" },
      { id: "reject", label: "Reject", style: "danger" },
    ];
    const commentId = newId("comment");
    const element = h("div", { class: "approval" },
      h("label", { for: commentId, class: "label" }, "Comment ", h("span", { class: "optional" }, "(optional)")),
      h("textarea", { id: commentId, name: "comment", rows: 2, "aria-describedby": `${commentId}-error` }),
      errorFor(fields, "response.comment", commentId),
      h("div", { class: "actions", role: "group", "aria-label": "Answer" },
        options.map((o) => h("button", {
          type: "submit", class: `btn btn-${styleOf(o)}`, name: "selectedOption", value: o.id,
        }, o.label))),
      errorFor(fields, "response.selectedOption", `${commentId}-choice`),
    );
    return {
      element,
      collect(submitter) {
        const comment = element.querySelector("textarea").value.trim();
        const selected = submitter && submitter.value ? submitter.value : null;
        if (!selected) throw Object.assign(new Error("choose one of the buttons"), { field: "response.selectedOption" });
        return comment ? { selectedOption: selected, comment } : { selectedOption: selected };
      },
    };
  },

  selection(payload, fields) {
    const multiple = Boolean(payload.multiple);
    const group = newId("sel");
    const legendId = `${group}-legend`;
    const element = h("fieldset", { class: "selection", "aria-describedby": `${group}-error` },
      h("legend", { id: legendId }, multiple ? "Choose one or more" : "Choose one"),
      (payload.options || []).map((o) => {
        const id = newId("opt");
        return h("div", { class: "choice" },
          h("input", { type: multiple ? "checkbox" : "radio", id, name: group, value: o.id }),
          h("label", { for: id }, h("span", { class: "choice-label" }, o.label),
            o.description ? h("span", { class: "choice-desc" }, o.description) : null));
      }),
      h("p", { class: "field-error", id: `${group}-error`, role: "alert", hidden: true, dataset: { field: "response.selectedIds" } }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Submit")),
    );
    fields.set("response.selectedIds", element.querySelector(".field-error"));
    return {
      element,
      collect() {
        return { selectedIds: [...element.querySelectorAll("input:checked")].map((i) => i.value) };
      },
    };
  },

  form(payload, fields) {
    const specs = payload.fields || [];
    const inputs = [];
    const element = h("div", { class: "form-fields" },
      specs.map((spec) => {
        const id = newId("field");
        const errorId = `${id}-error`;
        const common = { id, name: spec.name, "aria-describedby": errorId };
        if (spec.required) {
          common.required = true;
          common["aria-required"] = "true";
        }
        if (spec.placeholder) common.placeholder = spec.placeholder;
        let input;
        const type = spec.type || "text";
        if (type === "textarea") input = h("textarea", { ...common, rows: 3 });
        else if (type === "select") {
          input = h("select", common, h("option", { value: "" }, "Choose…"),
            (spec.options || []).map((o) => h("option", { value: o.id }, o.label)));
        } else if (type === "checkbox") input = h("input", { ...common, type: "checkbox" });
        else {
          const attrs = { ...common, type: { number: "number", email: "email", url: "url", date: "date" }[type] || "text" };
          if (type === "number") {
            attrs.step = "any";
            if (spec.min !== undefined) attrs.min = spec.min;
            if (spec.max !== undefined) attrs.max = spec.max;
          }
          input = h("input", attrs);
        }
        if (spec.default !== undefined && spec.default !== null) {
          if (type === "checkbox") input.checked = Boolean(spec.default);
          else input.value = String(spec.default);
        }
        inputs.push({ spec, input, type });
        const label = h("label", { for: id, class: "label" }, spec.label || spec.name,
          spec.required ? [" ", h("span", { class: "req", "aria-hidden": "true", title: "required" }, "*")] : null);
        const hint = [];
        if (type === "number" && (spec.min !== undefined || spec.max !== undefined)) {
          hint.push(h("span", { class: "hint" }, rangeHint(spec)));
        }
        if (spec.description) hint.push(h("span", { class: "hint" }, spec.description));
        return h("div", { class: `field field-${type}` },
          type === "checkbox" ? h("div", { class: "check" }, input, label) : [label, input],
          hint, errorFor(fields, `response.${spec.name}`, id));
      }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Submit")),
    );
    return {
      element,
      collect() {
        const out = {};
        for (const { spec, input, type } of inputs) {
          if (type === "checkbox") {
            out[spec.name] = input.checked;
            continue;
          }
          const raw = input.value;
          if (raw === "") continue; // absent: the API says whether it was required
          if (type === "number") {
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
    const attrs = { id, name: "text", "aria-describedby": `${id}-error`, required: true, "aria-required": "true" };
    if (payload.placeholder) attrs.placeholder = payload.placeholder;
    if (payload.maxLength) attrs.maxlength = payload.maxLength;
    if (payload.minLength) attrs.minlength = payload.minLength;
    const input = payload.multiline ? h("textarea", { ...attrs, rows: 4 }) : h("input", { ...attrs, type: "text" });
    const limits = [];
    if (payload.minLength) limits.push(`at least ${payload.minLength}`);
    if (payload.maxLength) limits.push(`at most ${payload.maxLength}`);
    const element = h("div", { class: "text-input" },
      h("label", { for: id, class: "label" }, "Your answer ", h("span", { class: "req", "aria-hidden": "true" }, "*")),
      input,
      limits.length ? h("span", { class: "hint" }, `${limits.join(", ")} characters`) : null,
      errorFor(fields, "response.text", id),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Submit")),
    );
    return { element, collect: () => ({ text: input.value }) };
  },

  freeform(payload, fields) {
    const id = newId("json");
    const editor = h("textarea", {
      id, name: "json", rows: 6, class: "code", spellcheck: "false", "aria-describedby": `${id}-error`,
    });
    editor.value = "{\n  \n}";
    const shown = Object.keys(payload).length ? h("details", { class: "payload" },
      h("summary", {}, "Request payload"), h("pre", { class: "json" }, JSON.stringify(payload, null, 2))) : null;
    const element = h("div", { class: "freeform" },
      shown,
      h("label", { for: id, class: "label" }, "Response (JSON)"),
      editor,
      errorFor(fields, "response", id),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Submit")),
    );
    return {
      element,
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

function rangeHint(spec) {
  if (spec.min !== undefined && spec.max !== undefined) return `between ${spec.min} and ${spec.max}`;
  if (spec.min !== undefined) return `at least ${spec.min}`;
  return `at most ${spec.max}`;
}
