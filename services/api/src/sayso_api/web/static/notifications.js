// Notifications: your own preferences (e-mail on or off, your Slack webhook, quiet hours), a
// channel's Slack webhook (on its settings page), and the notification log (the Notifications page
// and the Operator page). Slack webhook URLs are credentials: the API takes them and only ever
// shows their host back.

import { api } from "./api.js";
import { h, newId, timeEl } from "./dom.js";

function field(label, input, hint) {
  input.id = input.id || newId("n");
  // The hint is read with the field, not only seen next to it.
  if (hint) input.setAttribute("aria-describedby", `${input.id}-hint`);
  return h("div", { class: "field" }, h("label", { for: input.id, class: "label" }, label), input,
    hint ? h("span", { class: "hint", id: `${input.id}-hint` }, hint) : null);
}

function check(label, input) {
  input.id = input.id || newId("n");
  return h("div", { class: "check" }, input, h("label", { for: input.id }, label));
}

function say(el, ok, text) {
  el.className = `result result-${ok ? "ok" : "error"}`;
  el.textContent = text;
  el.hidden = false;
}

function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

/** Your preferences, as a card with its own form. */
export function preferencesSection() {
  const email = h("input", { type: "checkbox", name: "email", id: newId("n") });
  const address = h("span", { class: "muted" });
  const slackNow = h("p", { class: "hint" }, "Loading…");
  const slack = h("input", { type: "url", name: "slackWebhookUrl", placeholder: "https://hooks.slack.com/services/…", autocomplete: "off" });
  const removeSlack = h("input", { type: "checkbox", name: "removeSlack" });
  const quiet = h("input", { type: "checkbox", name: "quiet" });
  const urgent = h("input", { type: "checkbox", name: "escalationsDuringQuietHours" });
  const incidents = h("input", { type: "checkbox", name: "operatorEmails" });
  const start = h("input", { type: "time", name: "quietStart", value: "22:00" });
  const end = h("input", { type: "time", name: "quietEnd", value: "07:00" });
  const zone = h("input", { type: "text", name: "timeZone", value: localZone(), autocomplete: "off", spellcheck: "false" });
  const out = h("p", { role: "status", hidden: true });
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save notifications");
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "np-title", dataset: { section: "preferences" } },
    h("h2", { id: "np-title" }, "Your notifications"),
    h("p", { class: "hint" }, "How you hear about reviews in your channels and the ones shared with you. Reminders and escalations follow the same choices."),
    h("div", { class: "check" }, email, h("label", { for: email.id }, "E-mail me ", address)),
    check("Webhook incidents by e-mail (an endpoint disabled, deliveries failing, a receiver unreachable; one per incident)", incidents),
    h("fieldset", {}, h("legend", {}, "Slack"), slackNow,
      field("Slack incoming-webhook URL", slack, "Messages arrive with answer buttons. Stored encrypted; only its host is shown."),
      check("Remove my Slack webhook", removeSlack)),
    h("fieldset", {}, h("legend", {}, "Quiet hours"),
      check("Hold notices back during quiet hours (escalations too)", quiet),
      check("Let escalations through during quiet hours", urgent),
      h("div", { class: "inline-form" }, field("From", start), field("Until", end),
        field("Time zone", zone, "IANA name, e.g. Europe/Berlin"))),
    h("div", { class: "actions" }, save), out);

  function show(p) {
    email.checked = p.email;
    address.textContent = `(${p.emailAddress})`;
    slackNow.textContent = p.slackWebhookSet ? `A webhook on ${p.slackWebhookHost} is set.` : "No Slack webhook set.";
    slack.value = "";
    removeSlack.checked = false;
    quiet.checked = Boolean(p.quietHours);
    urgent.checked = Boolean(p.escalationsDuringQuietHours);
    incidents.checked = p.operatorEmails !== false;
    if (p.quietHours) {
      start.value = p.quietHours.start;
      end.value = p.quietHours.end;
      zone.value = p.quietHours.timeZone;
    }
  }

  api("/api/v1/users/me/notifications").then(show).catch((err) => say(out, false, err.message));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      email: email.checked,
      quietHours: quiet.checked ? { start: start.value, end: end.value, timeZone: zone.value.trim() } : null,
      escalationsDuringQuietHours: urgent.checked,
      operatorEmails: incidents.checked,
    };
    if (removeSlack.checked) body.slackWebhookUrl = null;
    else if (slack.value.trim()) body.slackWebhookUrl = slack.value.trim();
    save.disabled = true;
    try {
      show(await api("/api/v1/users/me/notifications", { method: "PUT", body }));
      say(out, true, "Saved.");
    } catch (err) {
      say(out, false, err.field ? `${err.field}: ${err.message}` : err.message);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

/** A channel's own Slack webhook (every review of the channel is posted there too). */
export function channelSlackSection(agent) {
  const now = h("p", { class: "hint" }, "Loading…");
  const url = h("input", { type: "url", name: "channelSlackWebhookUrl", placeholder: "https://hooks.slack.com/services/…", autocomplete: "off" });
  const out = h("p", { role: "status", hidden: true });
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save Slack webhook");
  const remove = h("button", { type: "button", class: "btn" }, "Remove");
  const path = `/api/v1/agents/${encodeURIComponent(agent.id)}/notifications`;
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "cs-title", dataset: { section: "channel-slack" } },
    h("h2", { id: "cs-title" }, "Slack channel"),
    h("p", { class: "hint" }, "Every review of this channel is also posted to this Slack webhook, with answer buttons. A click answers as you, the channel's owner."),
    now, field("Slack incoming-webhook URL", url), h("div", { class: "actions" }, save, remove), out);
  const show = (s) => {
    now.textContent = s.slackWebhookSet ? `A webhook on ${s.slackWebhookHost} is set.` : "No Slack webhook set.";
    url.value = "";
  };
  async function put(value) {
    save.disabled = true;
    try {
      show(await api(path, { method: "PUT", body: { slackWebhookUrl: value } }));
      say(out, true, value ? "Saved." : "Removed.");
    } catch (err) {
      say(out, false, err.message);
    } finally {
      save.disabled = false;
    }
  }
  api(path).then(show).catch((err) => say(out, false, err.message));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (url.value.trim()) put(url.value.trim());
  });
  remove.addEventListener("click", () => put(null));
  return form;
}

const STATE_BADGE = { sent: "state-delivered", failed: "state-failed", pending: "state-sent", cancelled: "", skipped: "" };

/** The newest notifications with their state and last error; `refresh()` reloads it. */
export function notificationLog({ limit = 20 } = {}) {
  // Seven columns are wider than a phone: the table scrolls sideways there, so the keyboard must
  // be able to reach it (a focusable, named region; axe's scrollable-region-focusable).
  const wrap = h("div", {
    class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Notification log", dataset: { section: "notification-log" },
  }, h("p", { class: "muted" }, "Loading…"));
  async function refresh() {
    try {
      const rows = (await api("/api/v1/notifications", { query: { limit } })).data || [];
      wrap.replaceChildren(rows.length ? h("table", { class: "grid notifications" },
        h("caption", { class: "visually-hidden" }, "Notifications"),
        h("thead", {}, h("tr", {}, ["When", "Kind", "For", "Why", "State", "Attempts", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows.map((n) => h("tr", { dataset: { notificationId: n.id, state: n.state } },
          h("td", {}, timeEl(n.createdAt)),
          h("td", {}, n.kind === "email" ? "E-mail" : "Slack"),
          h("td", {}, n.recipient),
          h("td", {}, n.purpose),
          h("td", {}, h("span", { class: `badge ${STATE_BADGE[n.state] || ""}` }, n.state),
            n.deferredUntil && n.state === "pending" ? [" until ", timeEl(n.deferredUntil)] : null),
          h("td", {}, n.attemptCount),
          h("td", { class: "muted" }, n.lastError || "")))))
        : h("p", { class: "muted" }, "No notifications yet."));
    } catch (err) {
      wrap.replaceChildren(h("p", { class: "form-error" }, err.message));
    }
  }
  refresh();
  return { el: wrap, refresh };
}

/** The Notifications page: your preferences and what was sent about your channels' reviews. */
export function notificationsView(root) {
  const log = notificationLog({ limit: 50 });
  root.append(h("div", { class: "settings" },
    h("header", { class: "view-head" }, h("div", { class: "title-row" }, h("h1", { id: "view-title", tabindex: "-1" }, "Notifications"))),
    h("div", { class: "scroller" }, h("div", { class: "settings-body" }, preferencesSection(),
      h("section", { class: "card", "aria-labelledby": "nl-title" }, h("h2", { id: "nl-title" }, "Recent notifications"), log.el)))));
  return {
    title: "Notifications",
    onEvent(name) {
      if (name.startsWith("review:") || name === "message:created") setTimeout(log.refresh, 1000);
    },
    onChannels() {},
    resync: log.refresh,
    destroy() {},
  };
}
