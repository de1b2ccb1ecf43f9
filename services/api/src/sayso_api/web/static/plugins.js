// The freeform renderers the inbox ships (GET /api/v1/plugins lists the same four). A message
// names one in metadata.plugin (a freeform review's payload.plugin is copied there by the API);
// its data is the review's payload, or the metadata. Everything is built as DOM nodes with text
// content: nothing in the data can become markup, except Markdown through the escaping renderer.
import { h } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const VARIANTS = new Set(["success", "warning", "error", "info", "neutral"]);

function safeUrl(value) {
  try {
    const url = new URL(String(value));
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function cellText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function tree(value, depth = 0) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    return h("details", { class: "json-tree", open: depth < 2 },
      h("summary", {}, Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`),
      h("ul", {}, entries.map(([k, v]) => h("li", {}, h("span", { class: "json-key" }, `${k}: `), tree(v, depth + 1)))));
  }
  return h("span", { class: `json-value json-${value === null ? "null" : typeof value}` }, JSON.stringify(value));
}

const RENDERERS = {
  json: (data) => tree(data.data === undefined ? data : data.data),
  markdown(data) {
    const body = h("div", { class: "md" });
    // renderMarkdown escapes the text before adding its fixed set of tags.
    body.innerHTML = renderMarkdown(typeof data.markdown === "string" ? data.markdown : "");
    return body;
  },
  table(data) {
    const columns = (Array.isArray(data.columns) ? data.columns : []).map((c) =>
      c && typeof c === "object" ? { key: String(c.key), label: String(c.label ?? c.key) } : { key: String(c), label: String(c) });
    const rows = Array.isArray(data.rows) ? data.rows : [];
    return h("table", { class: "plugin-table" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c, i) =>
        h("td", {}, cellText(Array.isArray(row) ? row[i] : row && typeof row === "object" ? row[c.key] : "")))))));
  },
  "status-badge"(data) {
    const variant = VARIANTS.has(data.variant) ? data.variant : "neutral";
    const url = data.url ? safeUrl(data.url) : null;
    return h("div", { class: "plugin-badge" },
      h("span", { class: `status-badge status-${variant}` }, cellText(data.label)),
      data.details ? h("p", { class: "muted" }, cellText(data.details)) : null,
      url ? h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, url) : null);
  },
};

/** The rendering of a message's plugin, or null when it names none. */
export function pluginView(message) {
  const name = message.metadata && message.metadata.plugin;
  if (typeof name !== "string" || !name) return null;
  const review = message.review;
  const data = review && review.type === "freeform" && review.payload && review.payload.plugin === name
    ? review.payload : message.metadata;
  const render = RENDERERS[name] || ((d) => tree(d));
  return h("section", { class: "plugin", dataset: { plugin: name }, "aria-label": `${name} view` },
    data.title ? h("h4", { class: "plugin-title" }, cellText(data.title)) : null,
    render(data));
}
