// Building the DOM without HTML strings: every piece of text becomes a text node, so nothing an
// agent, a webhook or a user typed can turn into markup. The one place that produces HTML is
// markdown.js, which escapes first.

let uid = 0;

/** A fresh id for label/aria pairing. */
export function newId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/**
 * h("button", {class: "btn", onclick: fn, "aria-label": "x"}, "text", child, [more])
 * Attributes: `class`, `dataset` (object), `on*` (listeners), booleans (set when true),
 * anything else with setAttribute. Children: strings/numbers (text nodes), nodes, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Local time, with the full timestamp as a tooltip. */
export function timeEl(iso, { withDate = false } = {}) {
  if (!iso) return h("span", {}, "—");
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  const text = withDate || !sameDay
    ? d.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" })
    : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return h("time", { datetime: iso, title: d.toISOString() }, text);
}

/** 75 -> "1m 15s"; 4000 -> "1h 6m". */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A button that copies `text`; says "Copied" for a moment. */
export function copyButton(text, label = "Copy") {
  const btn = h("button", { type: "button", class: "btn btn-small" }, label);
  btn.addEventListener("click", async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // Clipboard API refused (no permission, insecure context): fall back to a selection.
      const area = h("textarea", { class: "visually-hidden", readonly: true }, text);
      document.body.append(area);
      area.select();
      ok = document.execCommand("copy");
      area.remove();
    }
    btn.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { btn.textContent = label; }, 1500);
  });
  return btn;
}

/** A box for a secret that is shown once (token, signing secret), with copy buttons. */
export function secretBox(title, rows) {
  return h("div", { class: "secret-box", role: "status" },
    h("p", { class: "secret-title" }, h("strong", {}, title), " — shown only once: copy it now."),
    rows.map(([label, value]) => h("div", { class: "secret-row" },
      h("span", { class: "secret-label" }, label),
      h("code", { class: "secret-value", "data-secret": label }, value),
      copyButton(value),
    )),
  );
}
