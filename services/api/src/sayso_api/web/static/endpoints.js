// A channel's webhook endpoints in its settings (owner only, as every setting): the channel's own
// and the account-wide ones (which get every channel's events, marked as such), each with its
// event types, JSON filter, body format, rate limit and headers; enable/disable with the reason;
// the signing secret shown once after create or rotation; recover and replay.
// The choices (event types, formats, limits) come from GET /api/v1/endpoints/choices, never a
// copy here, so a type the server adds shows up without a change to this file.
// Also the labels the delivery view shows for the endpoint each delivery went to.

import { api } from "./api.js";
import { h, newId, secretBox, timeEl } from "./dom.js";

// Friendlier names for the types we know; an unknown type shows as its code alone.
const EVENT_NAMES = {
  "review:responded": "Review answered",
  "review:expired": "Review expired",
  "review:voted": "Vote on a review",
  "message:created": "Messages",
  "message:updated": "Streamed message updated",
  "delivery:status": "Delivery status changed",
  "agent:status": "Agent status ping",
  "approval:remembered": "Approval remembered",
  "approval:revoked": "Remembered approval revoked",
};
const FORMAT_NAMES = {
  placet: "Placet (the agent's own webhook body)",
  processa: "Processa",
  standard: "Standard Webhooks envelope",
};

function base(channelId) {
  return channelId ? `/api/v1/agents/${encodeURIComponent(channelId)}/endpoints` : "/api/v1/endpoints";
}

function pathOf(endpoint) {
  return `${base(endpoint.channelId)}/${encodeURIComponent(endpoint.id)}`;
}

/** A destination beyond HTTP (a Kafka topic), when the API reports one. */
function destinationText(d) {
  if (d.type === "kafka") {
    const servers = (d.bootstrapServers || []).join(", ");
    return ["Kafka topic ", h("code", {}, d.topic), servers ? [" on ", h("code", { class: "url" }, servers)] : " on this cluster"];
  }
  return h("code", { class: "url" }, JSON.stringify(d));
}

function nameOf(endpoint) {
  return endpoint.description || endpoint.url;
}

// --- labels for the delivery view -------------------------------------------------------------

const LABELS_MS = 30_000;
const labelCache = new Map();

/** The endpoints a channel's deliveries can go to (its own and the account's), by id, cached a
 * little while. A member (who cannot list them) gets an empty map and sees ids. */
export async function endpointLabels(channelId) {
  const hit = labelCache.get(channelId);
  if (hit && hit.at > Date.now() - LABELS_MS) return hit.labels;
  const labels = new Map();
  const lists = await Promise.allSettled([api(base(channelId)), api(base(null))]);
  for (const got of lists) {
    if (got.status !== "fulfilled") continue;
    for (const e of (got.value && got.value.data) || []) labels.set(e.id, e);
  }
  labelCache.set(channelId, { at: Date.now(), labels });
  return labels;
}

function forgetLabels() {
  labelCache.clear();
}

// --- the settings section ---------------------------------------------------------------------

/** A labelled control with its own error line (shown only while it has one). */
function control(label, input, hint = "") {
  const id = input.id || newId("ep");
  input.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const describe = (withError) => {
    const ids = [withError ? error.id : null, hintEl ? hintEl.id : null].filter(Boolean);
    if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
    else input.removeAttribute("aria-describedby");
  };
  describe(false);
  const show = (text) => {
    error.textContent = text || "";
    error.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    describe(Boolean(text));
  };
  const element = h("div", { class: "field" }, h("label", { for: id, class: "label" }, label), input, hintEl, error);
  return { element, input, show };
}

function localInput(date) {
  // datetime-local wants local wall time without a zone.
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function isoOf(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function say(el, kind, text) {
  el.classList.remove("result-ok", "result-error");
  el.classList.add("result", `result-${kind}`);
  el.textContent = text;
  el.hidden = false;
}

export function endpointsSection(agent) {
  const list = h("ul", { class: "endpoint-list", "aria-labelledby": "ep-title" });
  const shown = h("div", { class: "endpoint-secret" });
  const out = h("p", { role: "status", hidden: true });
  const addSlot = h("div", {});
  const state = { choices: null };

  function showSecret(title, secret, extra) {
    shown.replaceChildren(...[secretBox(title, [["Secret", secret]]),
      h("p", { class: "warning" }, "You won't see it again: it is stored encrypted and never shown after this. ",
        "Verify each request's webhook-signature header with it."),
      extra].filter(Boolean));
    shown.querySelector(".secret-row button").focus();
  }

  async function load() {
    try {
      if (!state.choices) state.choices = await api("/api/v1/endpoints/choices");
      const [own, account] = await Promise.all([api(base(agent.id)), api(base(null))]);
      const all = [...((own && own.data) || []), ...((account && account.data) || [])];
      list.replaceChildren(...(all.length ? all.map(row)
        : [h("li", { class: "muted" }, "No endpoints: events go to the default webhook URL only.")]));
      forgetLabels();
    } catch (err) {
      list.replaceChildren(h("li", { class: "form-error" }, err.message));
    }
  }

  async function act(endpoint, method, body, done) {
    try {
      const r = await api(pathOf(endpoint), { method, body });
      if (done) done(r);
    } catch (err) {
      say(out, "error", err.message);
    }
    await load();
  }

  function row(e) {
    const titleId = newId("ept");
    const li = h("li", { class: "endpoint", dataset: { endpointId: e.id, state: e.disabled ? "disabled" : "enabled" } });
    const edit = h("button", { type: "button", class: "btn btn-small", "aria-label": `Edit ${nameOf(e)}` }, "Edit");
    const toggle = h("button", { type: "button", class: "btn btn-small", "aria-label": `${e.disabled ? "Enable" : "Disable"} ${nameOf(e)}` },
      e.disabled ? "Enable" : "Disable");
    const rotate = h("button", { type: "button", class: "btn btn-small", "aria-label": `Rotate the signing secret of ${nameOf(e)}` }, "Rotate secret");
    const del = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete ${nameOf(e)}` }, "Delete");
    toggle.addEventListener("click", () => act(e, "PATCH", { disabled: !e.disabled }, () => {
      say(out, "ok", `${nameOf(e)} ${e.disabled ? "enabled" : "disabled"}.`);
    }).then(() => focusRow(e.id, ".endpoint-toggle")));
    toggle.classList.add("endpoint-toggle");
    rotate.addEventListener("click", async () => {
      if (!window.confirm(`Issue a new signing secret for ${nameOf(e)}? The current one keeps signing for a grace period.`)) return;
      try {
        const r = await api(`${pathOf(e)}/secret/rotate`, { method: "POST" });
        showSecret(`New signing secret for ${nameOf(e)}`, r.secret,
          r.previousExpiresAt ? h("p", { class: "hint" }, "The previous secret also signs until ", timeEl(r.previousExpiresAt, { withDate: true }), ".") : null);
      } catch (err) {
        say(out, "error", err.message);
      }
    });
    del.addEventListener("click", () => {
      if (!window.confirm(`Delete the endpoint ${nameOf(e)}? Its pending deliveries are not sent.`)) return;
      act(e, "DELETE", undefined, () => say(out, "ok", `${nameOf(e)} deleted.`)).then(() => {
        const heading = document.getElementById("ep-title");
        if (heading) heading.focus();
      });
    });
    edit.addEventListener("click", () => {
      const form = endpointForm(state.choices, e, {
        onSaved(updated) {
          say(out, "ok", `${nameOf(updated)} saved.`);
          load().then(() => focusRow(e.id, "button"));
        },
        onCancel() {
          form.remove();
          summary.hidden = false;
          edit.focus();
        },
      });
      summary.hidden = true;
      li.append(form);
      form.querySelector("input").focus();
    });

    const headerNames = Object.keys(e.headers || {});
    const summary = h("div", { class: "endpoint-summary" },
      h("div", { class: "endpoint-head" },
        h("h3", { id: titleId, class: "endpoint-name" }, nameOf(e)),
        e.channelId ? null : h("span", { class: "badge badge-shared", title: "Gets the events of every channel you own" }, "account-wide"),
        h("span", { class: `badge ${e.disabled ? "state-failed" : "state-delivered"}` }, e.disabled ? "disabled" : "enabled")),
      e.disabled ? h("p", { class: "warning endpoint-reason" }, `Disabled: ${e.disabledReason || "no reason recorded"}`) : null,
      h("dl", { class: "endpoint-facts" },
        e.description ? [h("dt", {}, "URL"), h("dd", {}, h("code", { class: "url" }, e.url))] : null,
        e.destination ? [h("dt", {}, "Destination"), h("dd", {}, destinationText(e.destination))] : null,
        h("dt", {}, "Events"), h("dd", {}, e.eventTypes.map((t, i) => [i ? ", " : "", h("code", {}, t)])),
        h("dt", {}, "Filter"), h("dd", {}, e.filter ? h("code", { class: "url" }, JSON.stringify(e.filter)) : "none (every event of these types)"),
        h("dt", {}, "Format"), h("dd", {}, e.format),
        h("dt", {}, "Rate limit"), h("dd", {}, e.rateLimit ? `${e.rateLimit} per second` : "none"),
        headerNames.length ? [h("dt", {}, "Headers"), h("dd", {}, headerNames.map((n, i) => [i ? ", " : "", h("code", {}, n)]))] : null),
      h("div", { class: "row-actions" }, edit, toggle, rotate, del),
      recoverBox(e));
    li.append(summary);
    return li;
  }

  function focusRow(id, selector) {
    const el = list.querySelector(`[data-endpoint-id="${CSS.escape(id)}"] ${selector}`);
    if (el) el.focus();
  }

  const add = h("button", { type: "button", class: "btn btn-primary", "aria-expanded": "false" }, "Add endpoint");
  add.addEventListener("click", () => {
    if (!state.choices) return;
    const form = endpointForm(state.choices, null, {
      channelId: agent.id,
      onSaved(created) {
        form.remove();
        add.hidden = false;
        add.setAttribute("aria-expanded", "false");
        showSecret(`Endpoint ${nameOf(created)} created — its signing secret`, created.secret);
        load();
      },
      onCancel() {
        form.remove();
        add.hidden = false;
        add.setAttribute("aria-expanded", "false");
        add.focus();
      },
    });
    add.hidden = true;
    add.setAttribute("aria-expanded", "true");
    addSlot.replaceChildren(form);
    form.querySelector("input").focus();
  });

  load();
  return h("section", { class: "card", "aria-labelledby": "ep-title", dataset: { section: "endpoints" } },
    h("h2", { id: "ep-title", tabindex: "-1" }, "Webhook endpoints"),
    h("p", { class: "hint" }, "More receivers beside the default URL, each with its own event types, filter, format, ",
      "rate limit and signing secret. Account-wide endpoints get the events of every channel you own."),
    shown, list, h("div", { class: "actions" }, add), addSlot, out);
}

/** Add (endpoint null) or edit one endpoint. Saves only what changed; the API's 422 goes to the
 * field it names. */
function endpointForm(choices, endpoint, { channelId, onSaved, onCancel }) {
  const editing = Boolean(endpoint);
  const e = endpoint || { url: "", description: "", eventTypes: choices.defaultEventTypes, filter: null, format: choices.formats[0], rateLimit: null, headers: {} };
  // A destination beyond HTTP (a Kafka topic) is set through the API; the form keeps it as it is.
  const url = control("URL", h("input", { type: "url", required: true, value: e.url, placeholder: "https://agent.example.com/hook", autocomplete: "off",
    readonly: Boolean(e.destination) }), e.destination ? "A Kafka destination: change it through the API or the CLI." : "");
  const description = control("Description", h("input", { type: "text", maxlength: 500, value: e.description || "", placeholder: "Audit log" }),
    "Shown in the delivery view and on the operator page.");
  const scope = editing ? null : control("Receives", h("select", {},
    h("option", { value: "channel" }, "This channel's events"),
    h("option", { value: "account" }, "Every channel's events (account-wide)")));
  const box = (t, extra = "") => {
    const id = newId("ept");
    return h("div", { class: "check" },
      h("input", { type: "checkbox", id, value: t, class: `endpoint-event${extra}`, checked: e.eventTypes.includes(t) }),
      h("label", { for: id }, EVENT_NAMES[t] ? [EVENT_NAMES[t], " "] : null, h("code", {}, t)));
  };
  const groupList = choices.groups || [];
  // A type or group the server no longer lists stays as saved (ticked) until it is unticked.
  const kept = e.eventTypes.filter((t) => !choices.eventTypes.includes(t) && !groupList.includes(t));
  const boxes = [...choices.eventTypes.map((t) => box(t)), ...kept.map((t) => box(t))];
  const eventsError = h("p", { class: "field-error", id: newId("epe"), hidden: true });
  const events = h("fieldset", { class: "endpoint-events" }, h("legend", {}, "Event types"), boxes,
    groupList.length ? h("fieldset", { class: "endpoint-events endpoint-groups" },
      h("legend", {}, "Groups (every type of the group, later ones too)"),
      groupList.map((g) => box(g, " endpoint-group"))) : null,
    eventsError);
  const filter = control("Filter (JSON)", h("textarea", { class: "code", rows: 3, spellcheck: "false", placeholder: '{"message.metadata.team": "payments"}' },
    e.filter ? JSON.stringify(e.filter, null, 2) : ""),
  "Over {event, channelId, message}; empty sends every event of the chosen types.");
  const format = control("Body format", h("select", {},
    choices.formats.map((f) => h("option", { value: f, selected: f === e.format }, FORMAT_NAMES[f] || f))));
  const rate = control("Rate limit (deliveries per second)", h("input", { type: "number", min: 1, max: choices.maxRateLimit, step: 1, inputmode: "numeric",
    value: e.rateLimit ?? "", placeholder: "no limit" }), `1 to ${choices.maxRateLimit}; empty for no limit.`);

  const current = Object.keys(e.headers || {});
  const rows = h("div", { class: "header-rows" });
  const replace = h("input", { type: "checkbox", id: newId("eph") });
  const headersError = h("p", { class: "field-error", hidden: true });
  const addHeader = h("button", { type: "button", class: "btn btn-small" }, "Add header");
  addHeader.addEventListener("click", () => {
    const n = h("input", { type: "text", "aria-label": "Header name", placeholder: "X-Api-Token", autocomplete: "off" });
    const v = h("input", { type: "password", "aria-label": "Header value", placeholder: "value", autocomplete: "off" });
    const remove = h("button", { type: "button", class: "btn btn-small btn-quiet", "aria-label": "Remove header" }, "Remove");
    const headerRow = h("div", { class: "header-row" }, n, v, remove);
    remove.addEventListener("click", () => { headerRow.remove(); replace.checked = true; addHeader.focus(); });
    rows.append(headerRow);
    replace.checked = true;
    n.focus();
  });
  const headers = h("fieldset", {}, h("legend", {}, "Extra headers"),
    editing ? h("p", { class: "hint" }, current.length
      ? ["Current: ", current.map((n, i) => [i ? ", " : "", h("code", {}, n)]), " (values are stored encrypted and never shown)."]
      : "None set.") : null,
    rows,
    h("div", { class: "actions" }, addHeader,
      editing ? h("span", { class: "check" }, replace, h("label", { for: replace.id }, "Replace all headers on save")) : null),
    headersError);

  const general = h("p", { class: "form-error", role: "alert", hidden: true });
  const save = h("button", { type: "submit", class: "btn btn-primary" }, editing ? "Save endpoint" : "Create endpoint");
  const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
  cancel.addEventListener("click", onCancel);
  const form = h("form", { class: "endpoint-form", novalidate: true, "aria-label": editing ? `Edit ${nameOf(e)}` : "New endpoint" },
    url.element, description.element, scope ? scope.element : null, events, filter.element, format.element, rate.element, headers,
    h("div", { class: "actions" }, save, cancel), general);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      onCancel();
    }
  });

  const fields = { url, description, filter, format, rateLimit: rate };
  function clearErrors() {
    for (const f of Object.values(fields)) f.show("");
    eventsError.hidden = true;
    headersError.hidden = true;
    general.hidden = true;
  }
  function showError(err) {
    // The API names the field: "filter.message.text", "eventTypes.0", "rateLimit", "headers.X"…
    const head = String(err.field || "").split(/[.[]/)[0];
    const target = fields[head];
    if (target) {
      target.show(err.message);
      target.input.focus();
    } else if (head === "eventTypes" || head === "headers") {
      const el = head === "eventTypes" ? eventsError : headersError;
      el.textContent = err.message;
      el.hidden = false;
      (head === "eventTypes" ? boxes[0].querySelector("input") : addHeader).focus();
    } else {
      general.textContent = err.message;
      general.hidden = false;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    let parsed = null;
    const text = filter.input.value.trim();
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        showError({ field: "filter", message: `not valid JSON: ${err.message}` });
        return;
      }
    }
    const wanted = {
      url: url.input.value.trim(),
      description: description.input.value.trim() || null,
      eventTypes: [...form.querySelectorAll(".endpoint-event:checked")].map((i) => i.value),
      filter: parsed,
      format: format.input.value,
      rateLimit: rate.input.value.trim() === "" ? null : Number(rate.input.value),
    };
    const body = {};
    for (const [key, value] of Object.entries(wanted)) {
      // Only what changed: re-sending the URL would lift a disable caused by a 410 answer.
      if (!editing || JSON.stringify(value) !== JSON.stringify(e[key] ?? null)) body[key] = value;
    }
    if (!editing && body.description === null) delete body.description;
    if (replace.checked || (!editing && rows.children.length)) {
      const hdrs = {};
      for (const r of rows.querySelectorAll(".header-row")) {
        const [n, v] = r.querySelectorAll("input");
        if (n.value.trim()) hdrs[n.value.trim()] = v.value;
      }
      body.headers = Object.keys(hdrs).length ? hdrs : null;
    }
    const path = editing ? pathOf(endpoint)
      : base(scope.input.value === "account" ? null : channelId);
    save.disabled = true;
    try {
      const saved = editing && !Object.keys(body).length ? endpoint
        : await api(path, { method: editing ? "PATCH" : "POST", body });
      onSaved(saved);
    } catch (err) {
      showError(err);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/** Recover (re-send what failed since a time) and replay (a time range of stored events). */
function recoverBox(e) {
  const now = new Date();
  const since = control("Failed since", h("input", { type: "datetime-local", value: localInput(new Date(now - 86_400_000)) }));
  const from = control("From", h("input", { type: "datetime-local", value: localInput(new Date(now - 3_600_000)) }));
  // The inputs hold whole minutes: the default end is the next one, so "now" is inside the range.
  const to = control("To", h("input", { type: "datetime-local", value: localInput(new Date(now.getTime() + 60_000)) }));
  const out = h("p", { role: "status", class: "endpoint-recover-result" });
  const recover = h("button", { type: "button", class: "btn btn-small" }, "Re-send failed");
  const replay = h("button", { type: "button", class: "btn btn-small" }, "Replay");
  let cursor = null;
  for (const f of [from, to]) f.input.addEventListener("change", () => { cursor = null; replay.textContent = "Replay"; });

  recover.addEventListener("click", async () => {
    since.show("");
    const at = isoOf(since.input.value);
    if (!at) { since.show("Enter a date and time."); since.input.focus(); return; }
    recover.disabled = true;
    try {
      const r = await api(`${pathOf(e)}/recover`, { method: "POST", body: { since: at } });
      say(out, "ok", `${r.requeued} deliver${r.requeued === 1 ? "y" : "ies"} queued again${r.more ? "; more remain: press again" : ""}.`);
    } catch (err) {
      if (err.field === "since") { since.show(err.message); since.input.focus(); } else say(out, "error", err.message);
    } finally {
      recover.disabled = false;
    }
  });
  replay.addEventListener("click", async () => {
    from.show("");
    to.show("");
    const start = isoOf(from.input.value);
    const end = isoOf(to.input.value);
    if (!start) { from.show("Enter a date and time."); from.input.focus(); return; }
    if (!end) { to.show("Enter a date and time."); to.input.focus(); return; }
    replay.disabled = true;
    try {
      const body = { from: start, to: end };
      if (cursor) body.after = cursor;
      const r = await api(`${pathOf(e)}/replay`, { method: "POST", body });
      cursor = r.more ? r.nextCursor : null;
      replay.textContent = cursor ? "Replay the rest" : "Replay";
      say(out, "ok", `${r.queued} queued, ${r.requeued} sent again, ${r.skipped} already delivered or on their way `
        + `(${r.scanned} events read)${r.more ? "; more remain: press “Replay the rest”" : ""}.`);
    } catch (err) {
      const target = err.field === "from" ? from : err.field === "to" ? to : null;
      if (target) { target.show(err.message); target.input.focus(); } else say(out, "error", err.message);
    } finally {
      replay.disabled = false;
    }
  });
  return h("details", { class: "endpoint-recover" },
    h("summary", {}, "Recover and replay"),
    h("div", { class: "endpoint-recover-body" },
      h("div", { class: "endpoint-recover-row" }, since.element, h("div", { class: "actions" }, recover)),
      h("p", { class: "hint" }, "Re-sends the deliveries that failed since then, with the same webhook-id."),
      h("div", { class: "endpoint-recover-row" }, from.element, to.element, h("div", { class: "actions" }, replay)),
      h("p", { class: "hint" }, "Sends the channel's stored events of that range that this endpoint matches, once each."),
      out));
}
