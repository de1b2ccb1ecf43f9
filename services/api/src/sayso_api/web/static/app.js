// Sayso web app: login, channel list, inbox, channel view, agent settings, operator page, audit
// log. Hash routes (#/inbox, #/c/<id>, #/c/<id>/settings, #/ops, #/audit[/<id>], #/channels) keep the server to one
// page; the JWT lives in localStorage so every open tab shares the session, and each tab keeps
// its own live stream.

import { ReviewAnnouncer, mountAnnouncer } from "./announcer.js";
import { api, session, setUnauthorizedHandler } from "./api.js";
import { auditView } from "./audit.js";
import { channelView } from "./channel.js";
import { clear, h } from "./dom.js";
import { inboxView } from "./inbox.js";
import { LiveStream } from "./live.js";
import { notificationsView } from "./notifications.js";
import { opsView } from "./ops.js";
import { settingsView } from "./settings.js";
import { Shortcuts } from "./shortcuts.js";

const app = document.getElementById("app");
const STATUS_TEXT = { active: "active", busy: "busy", error: "error", offline: "offline" };
const CONN_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

/** The user's agents (channels) with their pending review counts. */
class Channels {
  constructor(onChange) {
    this.agents = new Map();
    this.pending = {};
    this.onChange = onChange;
    this.timer = null;
  }

  async load() {
    const [agents, pending] = await Promise.all([api("/api/v1/agents"), api("/api/v1/stats/pending")]);
    this.agents = new Map(agents.map((a) => [a.id, a]));
    this.pending = pending.byChannel || {};
    this.onChange();
  }

  async loadPending() {
    try {
      const pending = await api("/api/v1/stats/pending");
      this.pending = pending.byChannel || {};
      this.onChange();
    } catch {
      // The next event or resync tries again.
    }
  }

  refreshPending() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.loadPending(), 200);
  }

  get(id) {
    return this.agents.get(id);
  }

  name(id) {
    const a = this.agents.get(id);
    return a ? a.name : id;
  }

  /** Whether the user owns the channel (a member of a shared one reads and answers only). */
  manages(id) {
    const a = this.agents.get(id);
    return !a || a.role !== "member";
  }

  update(agent) {
    this.agents.set(agent.id, { ...this.agents.get(agent.id), ...agent });
    this.onChange();
  }

  total() {
    return Object.values(this.pending).reduce((a, b) => a + b, 0);
  }

  statusDot(agent) {
    const status = agent.status || "unknown";
    return h("span", { class: `status status-${status}`, title: agent.statusMessage || "" },
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", { class: "status-text" }, STATUS_TEXT[status] || "no status"));
  }
}

function loginView() {
  clear(app);
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "password", type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-wide" }, "Sign in");
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in to Sayso"),
    h("div", { class: "field" }, h("label", { for: "email", class: "label" }, "E-mail"), email),
    h("div", { class: "field" }, h("label", { for: "password", class: "label" }, "Password"), password),
    error, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const r = await api("/api/v1/auth/login", { method: "POST", body: { email: email.value.trim(), password: password.value }, auth: false });
      session.save(r.token, r.expiresIn, r.user);
      if (!location.hash || location.hash === "#/login") location.hash = "#/inbox";
      start();
    } catch (err) {
      error.textContent = err.status === 401 ? "Wrong e-mail or password." : err.message;
      error.hidden = false;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  app.append(h("main", { class: "login-page", id: "main" }, form));
  document.title = "Sign in · Sayso";
  email.focus();
}

let shell = null;

function start() {
  if (shell) shell.stop();
  const current = session.load();
  if (!current) {
    loginView();
    return;
  }
  shell = new Shell(current);
}

class Shell {
  constructor(current) {
    this.session = current;
    this.view = null;
    this.route = null;
    this.channels = new Channels(() => this.renderChannels());
    clear(app);
    this.conn = h("span", { class: "conn conn-connecting", id: "connection", role: "status", "aria-live": "polite" },
      h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "conn-text" }, CONN_TEXT.connecting));
    const logout = h("button", { type: "button", class: "btn btn-small btn-quiet" }, "Sign out");
    logout.addEventListener("click", () => {
      session.clear();
      this.stop();
      location.hash = "#/login";
      loginView();
    });
    this.nav = {
      inbox: h("a", { href: "#/inbox", class: "nav-link" }, "Inbox ", h("span", { class: "count", id: "inbox-count" })),
      channels: h("a", { href: "#/channels", class: "nav-link only-narrow" }, "Channels"),
      ops: h("a", { href: "#/ops", class: "nav-link" }, "Operator"),
      notifications: h("a", { href: "#/notifications", class: "nav-link" }, "Notifications"),
      audit: h("a", { href: "#/audit", class: "nav-link" }, "Audit"),
    };
    this.channelList = h("ul", { class: "channel-list" });
    this.sidebar = h("nav", { class: "sidebar", "aria-label": "Channels" },
      h("h2", { class: "sidebar-title" }, "Channels"), this.channelList);
    this.main = h("main", { id: "main", class: "main", tabindex: "-1" });
    mountAnnouncer();
    this.reviews = new ReviewAnnouncer((id) => this.channels.name(id));
    this.shortcuts = new Shortcuts(this.main).start();
    this.sidebar.append(h("p", { class: "sidebar-foot" }, this.shortcuts.helpButton()));
    const skip = h("a", { href: "#main", class: "skip-link" }, "Skip to content");
    // The router reads every hash as a page address: "#main" would open the inbox. Move focus
    // to the content instead, and leave the address as it is.
    skip.addEventListener("click", (event) => {
      event.preventDefault();
      this.main.focus();
    });
    app.append(
      skip,
      h("header", { class: "topbar" },
        h("a", { href: "#/inbox", class: "brand", "aria-label": "Sayso home" }, "Sayso"),
        h("nav", { class: "topnav", "aria-label": "Main" }, Object.values(this.nav)),
        h("div", { class: "topbar-end" }, this.conn,
          h("span", { class: "user only-wide", title: current.user && current.user.email }, current.user ? current.user.email : ""), logout)),
      h("div", { class: "layout" }, this.sidebar, this.main));

    setUnauthorizedHandler(() => {
      session.clear();
      this.stop();
      loginView();
    });
    this.onHash = () => this.navigate();
    window.addEventListener("hashchange", this.onHash);
    this.channels.load().catch(() => {}).finally(() => this.navigate());
    this.live = new LiveStream({
      token: current.token,
      onEvent: (name, data, id) => {
        // Where the stream resumes from, on the connection badge (for support and the tests).
        if (id) this.conn.dataset.lastEventId = id;
        this.onEvent(name, data);
      },
      onState: (state) => this.setConn(state),
      onReady: ({ resumed }) => { if (!resumed) this.resync(); },
      onUnauthorized: () => { session.clear(); this.stop(); loginView(); },
    }).start();
  }

  stop() {
    window.removeEventListener("hashchange", this.onHash);
    if (this.live) this.live.stop();
    this.shortcuts.stop();
    this.reviews.stop();
    if (this.view) this.view.destroy();
    this.view = null;
    if (shell === this) shell = null;
  }

  setConn(state) {
    this.conn.className = `conn conn-${state}`;
    this.conn.dataset.state = state;
    this.conn.querySelector(".conn-text").textContent = CONN_TEXT[state] || state;
  }

  async resync() {
    try {
      await this.channels.load();
    } catch {
      // Shown by the view's own load, which fails the same way.
    }
    if (this.view) this.view.resync();
  }

  onEvent(name, data) {
    if (name === "agent:status") {
      const agent = this.channels.get(data.channelId);
      if (agent) this.channels.update({ ...agent, status: data.status, statusMessage: data.message, lastActivityAt: data.lastActivityAt });
    } else if (name === "message:created" || name === "review:responded" || name === "review:expired") {
      if (!this.channels.get(data.channelId)) this.channels.load().catch(() => {});
      if (data.review) this.channels.refreshPending();
      // One short line per new review, whatever page is open (the lists are not live regions).
      if (name === "message:created" && data.review && data.review.status === "pending") this.reviews.newReview(data);
    }
    if (this.view) this.view.onEvent(name, data);
  }

  renderChannels() {
    const total = this.channels.total();
    const count = document.getElementById("inbox-count");
    if (count) {
      count.textContent = total ? String(total) : "";
      count.setAttribute("aria-label", `${total} pending`);
    }
    const items = [...this.channels.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    // The list is rebuilt on every count change: a focused channel link keeps the focus.
    const focused = this.channelList.contains(document.activeElement) ? document.activeElement.dataset.channelId : null;
    this.channelList.replaceChildren(...(items.length ? items.map((a) => {
      const n = this.channels.pending[a.id] || 0;
      const current = this.route && this.route.name !== "audit" && this.route.channelId === a.id;
      return h("li", {}, h("a", {
        href: `#/c/${encodeURIComponent(a.id)}`, class: `channel-link${current ? " current" : ""}`,
        "aria-current": current ? "page" : null, dataset: { channelId: a.id },
      },
      h("span", { class: "channel-name" }, a.name),
      this.channels.statusDot(a),
      n ? h("span", { class: "pending-count", "aria-label": `${n} pending` }, String(n)) : null));
    }) : [h("li", { class: "muted" }, "No agents yet. Create one with the API (see README).")]));
    if (focused) {
      const link = [...this.channelList.querySelectorAll(".channel-link")].find((a) => a.dataset.channelId === focused);
      if (link) link.focus();
    }
    if (this.view) this.view.onChannels();
    document.title = `${total ? `(${total}) ` : ""}${this.view ? this.view.title : "Sayso"} · Sayso`;
  }

  navigate() {
    // Whether the user moved here from a control (a channel in the sidebar, a link, a shortcut):
    // then the focus follows to the new view's heading. Read before the view and the channel
    // list are rebuilt, which removes the focused link and drops the focus to <body>.
    const active = document.activeElement;
    const follow = Boolean(active && active !== document.body);
    const hash = location.hash.replace(/^#/, "") || "/inbox";
    const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
    let route;
    if (parts[0] === "c" && parts[1]) route = { name: parts[2] === "settings" ? "settings" : "channel", channelId: parts[1] };
    else if (parts[0] === "ops") route = { name: "ops" };
    else if (parts[0] === "notifications") route = { name: "notifications" };
    else if (parts[0] === "audit") route = { name: "audit", channelId: parts[1] || null };
    else if (parts[0] === "channels") route = { name: "channels" };
    else route = { name: "inbox" };
    if (this.view) this.view.destroy();
    this.route = route;
    clear(this.main);
    document.body.dataset.route = route.name;
    for (const [key, link] of Object.entries(this.nav)) {
      const on = key === route.name;
      link.classList.toggle("current", on);
      if (on) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const ctx = { channels: this.channels, channelId: route.channelId, shortcuts: this.shortcuts };
    if (route.name === "channel") this.view = channelView(this.main, ctx);
    else if (route.name === "settings") this.view = settingsView(this.main, ctx);
    else if (route.name === "ops") this.view = opsView(this.main, ctx);
    else if (route.name === "notifications") this.view = notificationsView(this.main);
    else if (route.name === "audit") this.view = auditView(this.main, ctx);
    else if (route.name === "channels") this.view = channelsOnly(this.main);
    else this.view = inboxView(this.main, ctx);
    this.renderChannels();
    // Move focus to the new view's heading so keyboard and screen-reader users land there.
    const heading = this.main.querySelector("h1");
    if (heading && follow) heading.focus();
  }
}

function channelsOnly(root) {
  // Phone width: the channel list is its own page (the sidebar is shown full width by CSS).
  root.append(h("h1", { id: "view-title", class: "visually-hidden", tabindex: "-1" }, "Channels"));
  return { title: "Channels", onEvent() {}, onChannels() {}, resync() {}, destroy() {} };
}

start();
