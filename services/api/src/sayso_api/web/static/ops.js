// The operator page: webhook throughput and failures, estimated open circuits (per host and per
// endpoint, with each endpoint's pending and failed deliveries), and the review backlog. Numbers
// come from GET /api/v1/stats/overview; the page refetches when delivery or review events arrive
// (at most once a second) and every few seconds as time moves on.

import { api } from "./api.js";
import { clear, formatAge, h, timeEl } from "./dom.js";
import { notificationLog } from "./notifications.js";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** The chart's y-axis for rates up to ``peak``: a round top (1, 2, 2.5 or 5 × 10ⁿ, at least
 * 0.1) and three ticks labelled with as many decimals as their step needs, so small rates
 * never read "0.1, 0.1, 0.0". */
export function axisTicks(peak) {
  const wanted = Math.max(0.1, Number.isFinite(peak) ? peak : 0);
  const power = 10 ** Math.floor(Math.log10(wanted));
  const top = [1, 2, 2.5, 5, 10].map((m) => m * power).find((v) => v >= wanted * (1 - 1e-9));
  const step = top / 2;
  let decimals = 0;
  while (decimals < 6 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) decimals += 1;
  return { top, ticks: [0, step, top].map((value) => ({ value, label: value.toFixed(decimals) })) };
}

export function opsView(root, { channels }) {
  const tiles = h("div", { class: "tiles" });
  const chart = h("figure", { class: "chart" });
  const hosts = h("div", { class: "table-wrap" });
  const endpoints = h("div", { class: "table-wrap" });
  const backlog = h("div", { class: "table-wrap" });
  // Not a status region: it changes every 5 s, and a screen reader said "Updated hh:mm:ss" each time.
  const updated = h("p", { class: "muted", id: "ops-updated" });
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  // E-mail and Slack notices with their attempts (the notifier's log).
  const notices = notificationLog({ limit: 10 });
  root.append(h("div", { class: "ops" },
    h("header", { class: "view-head" }, h("h1", { id: "view-title", tabindex: "-1" }, "Operator"), updated),
    h("div", { class: "scroller" }, error, tiles,
      h("section", { class: "card", "aria-labelledby": "chart-title" },
        h("h2", { id: "chart-title" }, "Webhook attempts, last 5 minutes"), chart),
      h("div", { class: "two-col" },
        h("section", { class: "card", "aria-labelledby": "hosts-title" }, h("h2", { id: "hosts-title" }, "Receivers"), hosts),
        h("section", { class: "card", "aria-labelledby": "backlog-title" }, h("h2", { id: "backlog-title" }, "Pending reviews by channel"), backlog)),
      h("section", { class: "card", "aria-labelledby": "endpoints-title", dataset: { section: "endpoints" } },
        h("h2", { id: "endpoints-title" }, "Webhook endpoints"), endpoints),
      h("section", { class: "card", "aria-labelledby": "notices-title" }, h("h2", { id: "notices-title" }, "Notifications"), notices.el))));

  let data = null;
  let timer = null;
  let scheduled = null;
  let inflight = false;

  function tile(label, value, { id, tone = "", hint = "" } = {}) {
    return h("div", { class: `tile ${tone}`, dataset: { stat: id } },
      h("span", { class: "tile-label" }, label),
      h("span", { class: "tile-value" }, value),
      hint ? h("span", { class: "tile-hint" }, hint) : null);
  }

  function render() {
    if (!data) return;
    const p = data.pendingReviews;
    const age = p.oldestAt ? (Date.now() - Date.parse(p.oldestAt)) / 1000 : null;
    clear(tiles).append(
      tile("Deliveries / s", data.deliveriesPerSecond.toFixed(2), { id: "rate", hint: "2xx, last minute" }),
      tile("Delivered", data.delivered, { id: "delivered", hint: "attempts, 5 min" }),
      tile("Failed attempts", data.failedAttempts, { id: "failed-attempts", tone: data.failedAttempts ? "warn" : "", hint: "5 min" }),
      tile("Failed deliveries", data.failedDeliveries, { id: "failed-deliveries", tone: data.failedDeliveries ? "bad" : "", hint: "gave up, 5 min" }),
      tile("Retrying", data.retrying, { id: "retrying", hint: "waiting for a retry" }),
      tile("Open circuits", data.openCircuits, { id: "open-circuits", tone: data.openCircuits ? "bad" : "", hint: "estimated per host" }),
      tile("Pending reviews", p.total, { id: "pending", tone: p.total ? "warn" : "" }),
      tile("Oldest pending", formatAge(age), { id: "oldest", hint: p.oldestAt ? "since creation" : "none waiting" }),
    );
    drawChart();
    hosts.replaceChildren(data.hosts.length ? h("table", { class: "grid" },
      h("caption", { class: "visually-hidden" }, "Receivers by recent failures"),
      h("thead", {}, h("tr", {}, ["Host", "Recent attempts", "Failures", "Circuit"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, data.hosts.map((x) => h("tr", { dataset: { host: x.host } },
        h("td", {}, h("code", {}, x.host)), h("td", {}, x.attempts), h("td", {}, x.failures),
        h("td", {}, h("span", { class: `badge ${x.open ? "state-failed" : "state-delivered"}` }, x.open ? "open" : "closed"))))))
      : h("p", { class: "muted" }, "No webhook attempts in the last 5 minutes."));
    endpoints.replaceChildren((data.endpoints || []).length ? h("table", { class: "grid endpoint-health" },
      h("caption", { class: "visually-hidden" }, "Webhook endpoints, open circuits first"),
      h("thead", {}, h("tr", {}, ["Endpoint", "Channel", "Pending", "Failed", "Circuit", "State"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, data.endpoints.map((e) => h("tr", { dataset: { endpointId: e.id } },
        h("td", {}, e.description ? [e.description, h("br", {})] : null, h("code", { class: "url" }, e.url)),
        h("td", {}, e.channelId
          ? h("a", { href: `#/c/${encodeURIComponent(e.channelId)}/settings` }, channels.name(e.channelId))
          : h("span", { class: "badge badge-shared" }, "account-wide")),
        h("td", { dataset: { stat: "pending" } }, e.pending),
        h("td", { dataset: { stat: "failed" } }, e.failed),
        h("td", { dataset: { stat: "circuit" } },
          h("span", { class: `badge ${e.open ? "state-failed" : "state-delivered"}`, title: `${e.circuitFailures} of the last ${e.attempts} attempts failed` }, e.open ? "open" : "closed")),
        h("td", { dataset: { stat: "state" } }, e.disabled
          ? [h("span", { class: "badge state-failed" }, "disabled"), " ", h("span", { class: "muted" }, e.disabledReason || "")]
          : h("span", { class: "badge state-delivered" }, "enabled"))))))
      : h("p", { class: "muted" }, "No webhook endpoints. Add them in a channel's settings."));
    const rows = Object.entries(p.byChannel).sort((a, b) => b[1] - a[1]);
    backlog.replaceChildren(rows.length ? h("table", { class: "grid" },
      h("caption", { class: "visually-hidden" }, "Pending reviews by channel"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Channel"), h("th", { scope: "col" }, "Pending"))),
      h("tbody", {}, rows.map(([id, n]) => h("tr", {},
        h("td", {}, h("a", { href: `#/c/${encodeURIComponent(id)}` }, channels.name(id))), h("td", {}, n)))))
      : h("p", { class: "muted" }, "No pending reviews."));
    updated.replaceChildren("Updated ", timeEl(data.generatedAt));
  }

  function drawChart() {
    const series = data.series;
    const width = 600;
    const height = 160;
    const pad = { l: 36, r: 8, t: 8, b: 22 };
    const perSecond = (n) => n / data.bucketSeconds;
    const axis = axisTicks(Math.max(0, ...series.map((b) => perSecond(b.delivered + b.failed))));
    const max = axis.top;
    const bw = (width - pad.l - pad.r) / Math.max(1, series.length);
    const y = (v) => pad.t + (height - pad.t - pad.b) * (1 - v / max);
    const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-svg-title chart-svg-desc", class: "chart-svg" });
    const total = series.reduce((acc, b) => acc + b.delivered + b.failed, 0);
    svg.append(
      s("title", { id: "chart-svg-title" }, "Webhook attempts per second"),
      s("desc", { id: "chart-svg-desc" }, `${data.delivered} delivered and ${data.failedAttempts} failed attempts in ${series.length} buckets of ${data.bucketSeconds} s; ${total} in all.`),
    );
    for (const { value: v, label } of axis.ticks) {
      svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: "grid-line" }),
        s("text", { x: pad.l - 4, y: y(v) + 4, class: "axis", "text-anchor": "end", "data-tick": label }, label));
    }
    series.forEach((b, i) => {
      const x = pad.l + i * bw + 1;
      const ok = perSecond(b.delivered);
      const bad = perSecond(b.failed);
      if (ok > 0) svg.append(s("rect", { x, width: Math.max(1, bw - 2), y: y(ok), height: y(0) - y(ok), class: "bar-ok" }));
      if (bad > 0) svg.append(s("rect", { x, width: Math.max(1, bw - 2), y: y(ok + bad), height: y(ok) - y(ok + bad), class: "bar-fail" }));
    });
    svg.append(s("text", { x: pad.l, y: height - 6, class: "axis" }, "−5 min"),
      s("text", { x: width - pad.r, y: height - 6, class: "axis", "text-anchor": "end" }, "now"));
    chart.replaceChildren(svg, h("figcaption", { class: "legend" },
      h("span", { class: "key key-ok" }, "delivered"), " ", h("span", { class: "key key-fail" }, "failed"), " — attempts per second"));
  }

  async function load() {
    if (inflight) return;
    inflight = true;
    try {
      data = await api("/api/v1/stats/overview", { query: { window: 300 } });
      error.hidden = true;
      render();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      inflight = false;
    }
  }

  function soon() {
    if (scheduled) return;
    scheduled = setTimeout(() => { scheduled = null; load(); }, 1000);
  }

  load();
  timer = setInterval(load, REFRESH_MS);
  // The oldest-pending age ticks between refreshes.
  const tick = setInterval(() => {
    if (!data || !data.pendingReviews.oldestAt) return;
    const el = tiles.querySelector('[data-stat="oldest"] .tile-value');
    if (el) el.textContent = formatAge((Date.now() - Date.parse(data.pendingReviews.oldestAt)) / 1000);
  }, 1000);
  return {
    title: "Operator",
    onEvent(name) {
      if (name === "delivery:status" || name.startsWith("review:") || name === "message:created") soon();
      if (name.startsWith("review:") || name === "message:created") setTimeout(notices.refresh, 1000);
    },
    onChannels() { render(); },
    resync() {
      load();
      notices.refresh();
    },
    destroy() {
      clearInterval(timer);
      clearInterval(tick);
      clearTimeout(scheduled);
    },
  };
}
