// A small markdown renderer that is safe by construction: the source is HTML-escaped first,
// then a few patterns over the escaped text add a fixed set of tags (strong, em, code, pre, a,
// br, p). No tag or attribute from the source survives escaping, and links are kept only for
// http(s) URLs, so agent text and inbound webhooks cannot inject script.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Placeholders for finished pieces (code, links) so later patterns cannot reach into them.
// NUL never survives from the source: it is replaced before anything else.
const HOLD = "\u0000";

function inline(escaped) {
  const held = [];
  const hold = (html) => {
    held.push(html);
    return `${HOLD}${held.length - 1}${HOLD}`;
  };
  let s = escaped;
  s = s.replace(/`([^`\n]+)`/g, (_, code) => hold(`<code>${code}</code>`));
  // [label](http(s)://…): the URL is already escaped, so it cannot close the attribute, and it
  // cannot contain a placeholder (HOLD is outside every URL character class below): nothing
  // restored later can land inside an attribute.
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s()<>\u0000]+)\)/gi, (_, label, url) =>
    hold(`<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${emphasis(label)}</a>`));
  // Bare http(s) URLs become links too.
  s = s.replace(/(^|[\s(])(https?:\/\/[^\s<>()\u0000]+[^\s<>().,;:!?'"\u0000])/gi, (_, before, url) =>
    before + hold(`<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${url}</a>`));
  s = emphasis(s);
  s = s.replace(/\n/g, "<br>");
  // Links may hold code; restore until no placeholder is left.
  const pattern = new RegExp(`${HOLD}(\\d+)${HOLD}`, "g");
  for (let i = 0; i < 3 && s.includes(HOLD); i += 1) s = s.replace(pattern, (_, n) => held[Number(n)]);
  return s;
}

function emphasis(s) {
  return s
    .replace(/\*\*(?=\S)([^\n]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([^\n]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*([^\s*](?:[^*\n]*?[^\s*])?)\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_([^\s_](?:[^_\n]*?[^\s_])?)_(?!\w)/g, "$1<em>$2</em>");
}

/** Markdown source -> HTML string that is safe to assign to innerHTML. */
export function renderMarkdown(source) {
  const text = String(source ?? "").replace(/\u0000/g, "\uFFFD").replace(/\r\n?/g, "\n");
  const out = [];
  const fence = /```[^\n`]*\n([\s\S]*?)(?:\n?```|$)/g;
  let last = 0;
  let match;
  while ((match = fence.exec(text)) !== null) {
    out.push(paragraphs(text.slice(last, match.index)));
    out.push(`<pre><code>${escapeHtml(match[1])}</code></pre>`);
    last = fence.lastIndex;
    if (match[0].length === 0) break;
  }
  out.push(paragraphs(text.slice(last)));
  return out.join("");
}

function paragraphs(text) {
  return text
    .split(/\n{2,}/)
    .map((p) => p.replace(/^\n+|\n+$/g, ""))
    .filter((p) => p.trim() !== "")
    .map((p) => `<p>${inline(escapeHtml(p))}</p>`)
    .join("");
}
