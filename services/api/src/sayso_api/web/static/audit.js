// The audit log (issue #29 items 7 and 9): every decision — a person's answer, a policy's, each
// quorum vote, an expiry's default — and every policy change, newest first, filtered by time,
// channel, who and what, a page at a time; exported whole as JSON Lines or CSV. An owner reads
// their channels' and account's entries, a member those of the channels shared with them.
// #/audit/<channelId> opens it filtered to one channel.

import { announce } from "./announcer.js";
import { api, apiBlob, session } from "./api.js";
import { h, newId, timeEl } from "./dom.js";

const KINDS = [
  ["answered", "Answered by a person"],
  ["auto_decided", "Decided by a policy"],
  ["voted", "Quorum vote"],
  ["quorum_decided", "Quorum decided"],
  ["expired", "Expired"],
  ["expired_default", "Expired, default applied"],
  ["withdrawn", "Withdrawn"],
  ["policy_changed", "Policy changed"],
  ["approval_remembered", "Approval remembered"],
  ["approval_revoked", "Remembered approval revoked"],
  ["escalated", "Escalated"],
  ["expunged", "Content expunged"],
];
const KIND_TEXT = Object.fromEntries(KINDS);
const PAGE = 50;

function labelled(label, input, hint = "") {
  const id = input.id || newId("aud");
  input.id = id;
  if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id, class: "label" }, label), input,
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
}

/** A datetime-local value (the user's local time) as the API's ISO 8601. */
function iso(value) {
  if (!value) return null;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? null : at.toISOString();
}

export function auditView(root, { channels, channelId }) {
  const me = (session.load() || {}).user;
  const from = h("input", { type: "datetime-local" });
  const to = h("input", { type: "datetime-local" });
  const channel = h("select", {});
  const actor = h("select", {},
    h("option", { value: "" }, "Anyone"),
    me ? h("option", { value: me.id }, "Me") : null,
    h("option", { value: "policy" }, "A policy"),
    h("option", { value: "agent" }, "An agent (API key)"),
    h("option", { value: "system" }, "The system (expiry, deletion)"));
  const kind = h("select", {}, h("option", { value: "" }, "Any"), KINDS.map(([v, t]) => h("option", { value: v }, t)));
  const decision = h("input", { type: "text", autocomplete: "off", placeholder: "approve" });
  const apply = h("button", { type: "submit", class: "btn btn-primary" }, "Show");
  const form = h("form", { class: "audit-filters inline-form", novalidate: true, "aria-label": "Audit filters" },
    labelled("From", from), labelled("Until", to), labelled("Channel", channel), labelled("Who", actor),
    labelled("Kind", kind), labelled("Decision", decision, "An option id (approve), dismissed, responded…"),
    h("div", { class: "actions" }, apply));
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const rows = h("tbody", {});
  const table = h("div", { class: "table-wrap" }, h("table", { class: "grid audit-table" },
    h("caption", { class: "visually-hidden" }, "Audit entries, newest first"),
    h("thead", {}, h("tr", {}, ["When", "Channel", "What", "Who", "Decision", "Rule", "Message"].map((t) => h("th", { scope: "col" }, t)))),
    rows));
  const none = h("p", { class: "muted", hidden: true }, "No entries match.");
  const more = h("button", { type: "button", class: "btn btn-small", hidden: true }, "Load more");
  const jsonl = h("button", { type: "button", class: "btn btn-small" }, "Export JSON Lines");
  const csv = h("button", { type: "button", class: "btn btn-small" }, "Export CSV");
  const exportStatus = h("span", { class: "muted", role: "status" });
  root.append(h("div", { class: "audit" },
    h("header", { class: "view-head" }, h("h1", { id: "view-title", tabindex: "-1" }, "Audit log"),
      h("div", { class: "actions" }, jsonl, csv, exportStatus)),
    h("div", { class: "scroller" }, form, error, none, table, more)));

  let cursor = null;
  let wanted = {};
  const query = () => ({
    from: iso(from.value), to: iso(to.value), channelId: channel.value, actor: actor.value,
    kind: kind.value, decision: decision.value.trim(),
  });
  const fields = { from, to, channelId: channel, actor, kind, decision };

  let listed = "";
  function channelOptions() {
    const current = channel.value || channelId || "";
    const agents = [...channels.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    // Called on every pending-count change: rebuilt only when the channels themselves change.
    const key = JSON.stringify(agents.map((a) => [a.id, a.name]));
    if (key === listed) return;
    listed = key;
    channel.replaceChildren(h("option", { value: "" }, "All channels"), ...agents.map((a) => h("option", { value: a.id }, a.name)));
    channel.value = current;
    if (channel.value !== current && current) channel.append(h("option", { value: current, selected: true }, current));
  }

  function who(actorOut) {
    const a = actorOut || {};
    if (a.type === "user") return a.name || a.id || "a person";
    if (a.type === "policy") return "Policy";
    if (a.type === "agent") return `Agent key ${a.id || ""}`.trim();
    return "System";
  }

  function row(e) {
    return h("tr", { dataset: { entryId: e.id, kind: e.kind } },
      h("td", {}, timeEl(e.at, { withDate: true })),
      h("td", {}, e.channelId ? channels.name(e.channelId) : "Account"),
      h("td", {}, e.kind === "auto_decided" && e.detail?.rememberedId
        ? "Decided by a remembered approval"
        : KIND_TEXT[e.kind] || e.kind),
      h("td", {}, who(e.actor)),
      h("td", {}, e.decision ?? "—"),
      h("td", {}, e.rule === null || e.rule === undefined ? (e.policyVersion ? `v${e.policyVersion}` : "—") : `${e.rule + 1} (v${e.policyVersion})`),
      h("td", {}, e.messageId && e.channelId
        ? h("a", { href: `#/c/${encodeURIComponent(e.channelId)}`, title: e.messageId }, "Open channel")
        : "—"));
  }

  async function load(next = null) {
    error.hidden = true;
    for (const el of Object.values(fields)) el.removeAttribute("aria-invalid");
    try {
      const page = await api("/api/v1/audit", { query: { ...wanted, cursor: next, limit: PAGE } });
      if (!next) rows.replaceChildren();
      rows.append(...page.data.map(row));
      cursor = page.nextCursor;
      more.hidden = !cursor;
      none.hidden = rows.childElementCount > 0;
      if (!next) announce(`${rows.childElementCount}${cursor ? " or more" : ""} entries`);
      return page.data;
    } catch (err) {
      const input = err.field && fields[err.field];
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
      error.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
      error.hidden = false;
      return [];
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    wanted = query();
    load();
  });
  more.addEventListener("click", async () => {
    const before = rows.childElementCount;
    await load(cursor);
    // The focus goes on to the first entry the page brought when the button goes away.
    if (more.hidden) {
      const first = rows.children[before];
      const link = first && first.querySelector("a");
      (link || apply).focus();
    }
  });

  async function exportAs(format) {
    exportStatus.textContent = "Preparing…";
    try {
      const blob = await apiBlob("/api/v1/audit/export", { query: { ...wanted, format } });
      const url = URL.createObjectURL(blob);
      const save = h("a", { href: url, download: `sayso-audit.${format}`, class: "visually-hidden" });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      exportStatus.textContent = `Exported as ${format === "csv" ? "CSV" : "JSON Lines"}.`;
    } catch (err) {
      exportStatus.textContent = `Export failed: ${err.message}`;
    }
  }
  jsonl.addEventListener("click", () => exportAs("jsonl"));
  csv.addEventListener("click", () => exportAs("csv"));

  channelOptions();
  wanted = query();
  load();
  return {
    title: "Audit log",
    onEvent() {},
    onChannels: channelOptions,
    resync() {},
    destroy() {},
  };
}
