// Per-agent settings: default webhook (URL, headers, events, retries), more webhook endpoints
// (endpoints.js), the channel's policy
// (policy.js: rules, versions, dry run), signing-secret rotation,
// a test send, recovery of failed deliveries, the channel's members (other users who read it and
// answer its reviews), inbound token webhooks and signed triggers. Only the owner has them.
// Secrets and tokens come back from the API once; they are shown once, with a copy button.

import { api } from "./api.js";
import { clear, copyButton, h, newId, secretBox, timeEl } from "./dom.js";
import { endpointsSection } from "./endpoints.js";
import { channelSlackSection, preferencesSection } from "./notifications.js";
import { policySection, rememberedSection } from "./policy.js";

const EVENTS = [
  ["review:responded", "Review answered"],
  ["review:expired", "Review expired"],
  ["message:created", "Human messages"],
];

function field(label, input, hint) {
  const id = input.id || newId("s");
  input.id = id;
  // The hint is read with the field, not only seen next to it.
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id, class: "label" }, label), input,
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
}

function result(el, kind, text) {
  el.className = `result result-${kind}`;
  el.textContent = text;
  el.hidden = false;
}

function splitList(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

export function settingsView(root, { channelId, channels }) {
  const title = h("h1", { id: "view-title", tabindex: "-1" }, "Agent settings");
  const body = h("div", { class: "settings-body" }, h("p", { class: "muted" }, "Loading…"));
  root.append(h("div", { class: "settings" },
    h("header", { class: "view-head" },
      h("div", { class: "title-row" }, title),
      h("nav", { class: "view-actions", "aria-label": "Agent" },
        h("a", { class: "btn btn-small", href: `#/c/${encodeURIComponent(channelId)}` }, "Back to channel"))),
    h("div", { class: "scroller" }, body)));

  async function load() {
    try {
      const agent = await api(`/api/v1/agents/${encodeURIComponent(channelId)}`);
      title.textContent = `${agent.name} — settings`;
      if (agent.role === "member") {
        clear(body).append(h("p", { class: "muted", role: "status" },
          "This channel was shared with you: you read it and answer its reviews. Only its owner manages it."));
        return;
      }
      clear(body).append(
        webhookSection(agent, (updated) => channels.update(updated)),
        endpointsSection(agent),
        policySection(agent),
        rememberedSection(agent),
        membersSection(agent),
        secretSection(agent),
        inboundSection(agent),
        triggerSection(agent),
        channelSlackSection(agent),
        preferencesSection(),
      );
    } catch (err) {
      clear(body).append(h("p", { class: "form-error", role: "alert" }, err.message));
    }
  }
  load();
  return { title: "Agent settings", onEvent() {}, onChannels() {}, resync() {}, destroy() {} };
}

function webhookSection(agent, onSaved) {
  const url = h("input", { type: "url", name: "webhookUrl", value: agent.webhookUrl || "", placeholder: "https://agent.example.com/hook", autocomplete: "off" });
  const enabled = h("input", { type: "checkbox", id: newId("en"), checked: agent.webhookEnabled !== false });
  const schedule = h("input", { type: "text", name: "retrySchedule", inputmode: "numeric",
    value: (agent.webhookRetrySchedule || []).join(", "), placeholder: "default: 5, 300, 1800, …" });
  const events = EVENTS.map(([value, label]) => {
    const id = newId("ev");
    return h("div", { class: "check" },
      h("input", { type: "checkbox", id, value, class: "event-box", checked: (agent.webhookEvents || []).includes(value) }),
      h("label", { for: id }, label, " ", h("code", {}, value)));
  });
  const names = Object.keys(agent.webhookHeaders || {});
  const rows = h("div", { class: "header-rows" });
  const addRow = (name = "", value = "") => {
    const n = h("input", { type: "text", "aria-label": "Header name", placeholder: "X-Api-Token", value: name, autocomplete: "off" });
    const v = h("input", { type: "password", "aria-label": "Header value", placeholder: "value", value, autocomplete: "off" });
    const remove = h("button", { type: "button", class: "btn btn-small btn-quiet", "aria-label": "Remove header" }, "Remove");
    const row = h("div", { class: "header-row" }, n, v, remove);
    remove.addEventListener("click", () => { row.remove(); replace.checked = true; });
    for (const el of [n, v]) el.addEventListener("input", () => { replace.checked = true; });
    rows.append(row);
  };
  const replace = h("input", { type: "checkbox", id: newId("rh") });
  const add = h("button", { type: "button", class: "btn btn-small" }, "Add header");
  add.addEventListener("click", () => { addRow(); replace.checked = true; rows.lastChild.querySelector("input").focus(); });
  const out = h("p", { role: "status", hidden: true });
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save webhook");
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "wh-title" },
    h("h2", { id: "wh-title" }, "Outgoing webhook"),
    field("Default webhook URL", url, "Answers to reviews are POSTed here, signed (Standard Webhooks)."),
    agent.webhookEnabled === false && agent.webhookDisabledReason
      ? h("p", { class: "warning" }, `Disabled: ${agent.webhookDisabledReason}`) : null,
    h("div", { class: "check" }, enabled, h("label", { for: enabled.id }, "Enabled")),
    h("fieldset", {}, h("legend", {}, "Events sent"), events),
    field("Retry schedule (seconds before each retry)", schedule, "Comma separated; empty for the default."),
    h("fieldset", {}, h("legend", {}, "Extra headers"),
      h("p", { class: "hint" }, names.length
        ? ["Current: ", names.map((n, i) => [i ? ", " : "", h("code", {}, n)]), " (values are stored encrypted and never shown)."]
        : "None set."),
      rows,
      h("div", { class: "actions" }, add,
        h("span", { class: "check" }, replace, h("label", { for: replace.id }, "Replace all headers on save")))),
    h("div", { class: "actions" }, save), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      webhookUrl: url.value.trim() || null,
      webhookEnabled: enabled.checked,
      webhookEvents: [...form.querySelectorAll(".event-box:checked")].map((i) => i.value),
    };
    const delays = splitList(schedule.value);
    if (delays.length) body.webhookRetrySchedule = delays.map(Number);
    if (replace.checked) {
      const headers = {};
      for (const row of rows.querySelectorAll(".header-row")) {
        const [n, v] = row.querySelectorAll("input");
        if (n.value.trim()) headers[n.value.trim()] = v.value;
      }
      body.webhookHeaders = headers;
    }
    save.disabled = true;
    try {
      const updated = await api(`/api/v1/agents/${encodeURIComponent(agent.id)}`, { method: "PATCH", body });
      onSaved(updated);
      result(out, "ok", "Saved.");
      if (replace.checked) {
        clear(rows);
        replace.checked = false;
        const hint = form.querySelector("fieldset:last-of-type .hint");
        const now = Object.keys(updated.webhookHeaders || {});
        hint.replaceChildren(...(now.length ? ["Current: ", now.join(", "), " (values are stored encrypted and never shown)."] : ["None set."]));
      }
    } catch (err) {
      result(out, "error", err.message);
    } finally {
      save.disabled = false;
    }
  });

  // Test send and recovery live with the webhook settings.
  const testOut = h("div", { class: "test-result", role: "status" });
  const test = h("button", { type: "button", class: "btn" }, "Send test event");
  test.addEventListener("click", async () => {
    test.disabled = true;
    testOut.replaceChildren(h("p", { class: "muted" }, "Sending…"));
    try {
      const r = await api(`/api/v1/agents/${encodeURIComponent(agent.id)}/webhook/test`, { method: "POST" });
      const a = r.attempt || {};
      testOut.replaceChildren(h("p", { class: r.delivered ? "result result-ok" : "result result-error" },
        r.delivered ? "Delivered" : "Failed",
        ` — ${a.statusCode ?? a.errorKind ?? "no answer"} in ${Math.round(a.durationMs || 0)} ms`,
        a.error ? ` (${a.error})` : ""));
    } catch (err) {
      testOut.replaceChildren(h("p", { class: "result result-error" }, err.message));
    } finally {
      test.disabled = false;
    }
  });
  const recoverOut = h("p", { role: "status", hidden: true });
  const recover = h("button", { type: "button", class: "btn" }, "Re-send failed (last 24 h)");
  recover.addEventListener("click", async () => {
    recover.disabled = true;
    try {
      const r = await api(`/api/v1/agents/${encodeURIComponent(agent.id)}/webhook/recover`, { method: "POST" });
      result(recoverOut, "ok", `${r.requeued} deliver${r.requeued === 1 ? "y" : "ies"} queued again${r.more ? "; more remain" : ""}.`);
    } catch (err) {
      result(recoverOut, "error", err.message);
    } finally {
      recover.disabled = false;
    }
  });
  return h("div", { class: "stack" }, form,
    h("section", { class: "card", "aria-labelledby": "tst-title" },
      h("h2", { id: "tst-title" }, "Test and recover"),
      h("p", { class: "hint" }, "Sends a signed webhook:test event to the default URL now."),
      h("div", { class: "actions" }, test, recover), testOut, recoverOut));
}

function membersSection(agent) {
  const list = h("div", { class: "table-wrap" });
  const email = h("input", { type: "email", required: true, maxlength: 320, placeholder: "teammate@example.com", autocomplete: "off" });
  const out = h("p", { role: "alert", hidden: true });
  const add = h("button", { type: "submit", class: "btn btn-primary" }, "Add member");
  const form = h("form", { class: "inline-form", novalidate: true, "aria-label": "Add a member" },
    field("E-mail of an existing user", email), h("div", { class: "actions" }, add));
  const base = `/api/v1/agents/${encodeURIComponent(agent.id)}/members`;

  async function load() {
    try {
      const members = (await api(base)).data || [];
      list.replaceChildren(members.length ? h("table", { class: "grid members" },
        h("caption", { class: "visually-hidden" }, "Members"),
        h("thead", {}, h("tr", {}, ["E-mail", "Added", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, members.map((m) => {
          const remove = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Remove ${m.email}` }, "Remove");
          remove.addEventListener("click", async () => {
            if (!window.confirm(`Stop sharing this channel with ${m.email}?`)) return;
            try {
              await api(`${base}/${encodeURIComponent(m.userId)}`, { method: "DELETE" });
            } catch (err) {
              result(out, "error", err.message);
            }
            load();
          });
          return h("tr", { dataset: { memberId: m.userId } }, h("td", {}, m.email),
            h("td", {}, timeEl(m.addedAt, { withDate: true })), h("td", { class: "row-actions" }, remove));
        }))) : h("p", { class: "muted" }, "Only you review this channel."));
    } catch (err) {
      list.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.hidden = true;
    add.disabled = true;
    try {
      const m = await api(base, { method: "POST", body: { email: email.value.trim() } });
      result(out, "ok", `${m.email} can now read this channel and answer its reviews.`);
      email.value = "";
      load();
    } catch (err) {
      result(out, "error", err.status === 404 && err.field === "email" ? "No user has this e-mail." : err.message);
    } finally {
      add.disabled = false;
    }
  });
  load();
  return h("section", { class: "card", "aria-labelledby": "mem-title" },
    h("h2", { id: "mem-title" }, "Members"),
    h("p", { class: "hint" }, "Members see this channel in their inbox and answer (and vote on) its reviews. They cannot change its settings, keys or webhooks."),
    list, form, out);
}

function secretSection(agent) {
  const out = h("div", {});
  const rotate = h("button", { type: "button", class: "btn btn-warning" }, "Rotate signing secret");
  rotate.addEventListener("click", async () => {
    if (!window.confirm("Issue a new signing secret? The current one keeps working for 24 hours.")) return;
    rotate.disabled = true;
    try {
      const r = await api(`/api/v1/agents/${encodeURIComponent(agent.id)}/webhook/secret/rotate`, { method: "POST" });
      out.replaceChildren(secretBox("New signing secret", [["Secret", r.webhookSecret]]),
        r.previousExpiresAt ? h("p", { class: "hint" }, "The previous secret also signs until ", timeEl(r.previousExpiresAt, { withDate: true }), ".") : null);
    } catch (err) {
      out.replaceChildren(h("p", { class: "result result-error", role: "alert" }, err.message));
    } finally {
      rotate.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "sec-title" },
    h("h2", { id: "sec-title" }, "Signing secret"),
    h("p", { class: "hint" }, "Webhooks carry a webhook-signature header made with this secret. During a rotation both signatures are sent."),
    h("div", { class: "actions" }, rotate), out);
}

function inboundSection(agent) {
  const list = h("div", { class: "table-wrap" });
  const shown = h("div", {});
  const name = h("input", { type: "text", required: true, maxlength: 64, placeholder: "CI pipeline" });
  const avatar = h("input", { type: "url", placeholder: "https://example.com/avatar.png" });
  const out = h("p", { role: "alert", hidden: true });
  const create = h("form", { class: "inline-form", novalidate: true, "aria-label": "New inbound webhook" },
    field("Name", name), field("Avatar URL (optional)", avatar),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create webhook URL")));
  const base = `/api/v1/agents/${encodeURIComponent(agent.id)}/inbound-webhooks`;

  async function load() {
    try {
      const data = await api(base);
      const hooks = data.data || [];
      list.replaceChildren(hooks.length ? h("table", { class: "grid" },
        h("caption", { class: "visually-hidden" }, "Inbound webhooks"),
        h("thead", {}, h("tr", {}, ["Name", "State", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, hooks.map((w) => {
          const toggle = h("button", { type: "button", class: "btn btn-small" }, w.active ? "Disable" : "Enable");
          toggle.addEventListener("click", () => act(`/api/webhooks/${encodeURIComponent(w.id)}/${w.active ? "disable" : "enable"}`, "POST"));
          const del = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete ${w.name}` }, "Delete");
          del.addEventListener("click", () => {
            if (window.confirm(`Delete the webhook "${w.name}"? Its URL stops working.`)) act(`/api/webhooks/${encodeURIComponent(w.id)}`, "DELETE");
          });
          return h("tr", { dataset: { webhookId: w.id } }, h("td", {}, w.name),
            h("td", {}, h("span", { class: `badge ${w.active ? "state-delivered" : "state-failed"}` }, w.active ? "active" : "disabled")),
            h("td", {}, w.lastUsedAt ? timeEl(w.lastUsedAt, { withDate: true }) : "never"),
            h("td", { class: "row-actions" }, toggle, del));
        }))) : h("p", { class: "muted" }, "No inbound webhooks."));
    } catch (err) {
      list.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }
  async function act(path, method) {
    try {
      await api(path, { method });
    } catch (err) {
      result(out, "error", err.message);
    }
    load();
  }
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.hidden = true;
    try {
      const body = { name: name.value.trim() };
      if (avatar.value.trim()) body.avatarUrl = avatar.value.trim();
      const w = await api(base, { method: "POST", body });
      shown.replaceChildren(secretBox(`Webhook "${w.name}"`, [["URL", w.url], ["Token", w.token]]),
        h("p", { class: "hint" }, "POST ", h("code", {}, '{"content": "…", "username": "…"}'), " to the URL; no other credential is needed."));
      name.value = "";
      avatar.value = "";
      load();
    } catch (err) {
      result(out, "error", err.message);
    }
  });
  load();
  return h("section", { class: "card", "aria-labelledby": "in-title" },
    h("h2", { id: "in-title" }, "Inbound webhooks (token URLs)"),
    h("p", { class: "hint" }, "Anyone holding the URL can post a message into this channel."),
    list, create, out, shown);
}

function triggerSection(agent) {
  const list = h("div", { class: "table-wrap" });
  const shown = h("div", {});
  const out = h("p", { role: "alert", hidden: true });
  const name = h("input", { type: "text", required: true, maxlength: 64, placeholder: "exports" });
  const text = h("input", { type: "text", required: true, value: "/text", placeholder: "/summary" });
  const status = h("input", { type: "text", placeholder: "/level (optional)" });
  const reviewType = h("select", {}, h("option", { value: "" }, "No review"),
    ["approval", "selection", "form", "text-input", "freeform"].map((t) => h("option", { value: t }, t)));
  const required = h("input", { type: "text", placeholder: "/export_id, /summary" });
  const allowIps = h("input", { type: "text", placeholder: "203.0.113.0/24" });
  const create = h("form", { class: "inline-form", novalidate: true, "aria-label": "New signed trigger" },
    field("Name", name), field("Text pointer", text, "JSON pointer into the request body"),
    field("Status pointer", status), field("Ask for a review", reviewType),
    field("Required pointers", required, "Comma separated"), field("Allowed addresses", allowIps, "CIDRs, comma separated; empty allows all"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create trigger")));
  const base = `/api/v1/agents/${encodeURIComponent(agent.id)}/triggers`;

  async function load() {
    try {
      const data = await api(base);
      const items = data.data || [];
      list.replaceChildren(items.length ? h("table", { class: "grid" },
        h("caption", { class: "visually-hidden" }, "Signed triggers"),
        h("thead", {}, h("tr", {}, ["Name", "URL", "State", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, items.map((t) => {
          const rotate = h("button", { type: "button", class: "btn btn-small" }, "Rotate secret");
          rotate.addEventListener("click", async () => {
            try {
              const r = await api(`/api/v1/triggers/${encodeURIComponent(t.id)}/rotate`, { method: "POST" });
              shown.replaceChildren(secretBox(`New secret for "${r.name}"`, [["Secret", r.secret]]),
                h("p", { class: "hint" }, "The previous secret stays valid for the grace period (24 h by default)."));
            } catch (err) {
              result(out, "error", err.message);
            }
          });
          const toggle = h("button", { type: "button", class: "btn btn-small" }, t.active ? "Disable" : "Enable");
          toggle.addEventListener("click", () => act(`/api/v1/triggers/${encodeURIComponent(t.id)}`, "PATCH", { active: !t.active }));
          const del = h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": `Delete ${t.name}` }, "Delete");
          del.addEventListener("click", () => {
            if (window.confirm(`Delete the trigger "${t.name}"?`)) act(`/api/v1/triggers/${encodeURIComponent(t.id)}`, "DELETE");
          });
          return h("tr", { dataset: { triggerId: t.id } }, h("td", {}, t.name),
            h("td", {}, h("code", { class: "url" }, t.url), " ", copyButton(t.url, "Copy URL")),
            h("td", {}, h("span", { class: `badge ${t.active ? "state-delivered" : "state-failed"}` }, t.active ? "active" : "disabled")),
            h("td", {}, t.lastUsedAt ? timeEl(t.lastUsedAt, { withDate: true }) : "never"),
            h("td", { class: "row-actions" }, rotate, toggle, del));
        }))) : h("p", { class: "muted" }, "No signed triggers."));
    } catch (err) {
      list.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }
  async function act(path, method, body) {
    try {
      await api(path, { method, body });
    } catch (err) {
      result(out, "error", err.message);
    }
    load();
  }
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    out.hidden = true;
    const mapping = { text: text.value.trim() };
    if (status.value.trim()) mapping.status = status.value.trim();
    if (reviewType.value) mapping.reviewType = reviewType.value;
    try {
      const t = await api(base, {
        method: "POST",
        body: { name: name.value.trim(), mapping, required: splitList(required.value), allowIps: splitList(allowIps.value) },
      });
      shown.replaceChildren(secretBox(`Trigger "${t.name}"`, [["URL", t.url], ["Secret", t.secret]]),
        h("p", { class: "hint" }, "Sign requests the Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature)."));
      name.value = "";
      load();
    } catch (err) {
      result(out, "error", err.field ? `${err.message}` : err.message);
    }
  });
  load();
  return h("section", { class: "card", "aria-labelledby": "tr-title" },
    h("h2", { id: "tr-title" }, "Signed triggers"),
    h("p", { class: "hint" }, "Outside systems post signed JSON; fields map to the message by JSON pointer."),
    list, create, out, shown);
}
