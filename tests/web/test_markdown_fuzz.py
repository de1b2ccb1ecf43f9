"""The Markdown renderer cannot put anything inside an attribute but a vetted http(s) URL: the
reported injection (a bare URL directly followed by ``[label](url)``) and a seeded fuzz of
markdown-ish strings, rendered by the real module in Chromium and checked element by element."""

from __future__ import annotations

import json
import random

import pytest

from tests.web.conftest import Tab

pytestmark = pytest.mark.slow

ALLOWED = {"p", "br", "strong", "em", "code", "pre", "a"}
CHECK = """async ({sources, allowed}) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  const problems = [];
  for (const source of sources) {
    const doc = new DOMParser().parseFromString(`<div>${renderMarkdown(source)}</div>`, "text/html");
    for (const el of doc.body.firstChild.querySelectorAll("*")) {
      const tag = el.tagName.toLowerCase();
      const names = el.getAttributeNames().sort().join(",");
      if (!allowed.includes(tag)) problems.push({source, why: `tag ${tag}`});
      else if (tag === "a") {
        const href = el.getAttribute("href") || "";
        if (names !== "href,rel,target" || !/^https?:\\/\\//i.test(href) || href.includes("\\u0000")
            || el.getAttribute("rel") !== "noopener noreferrer nofollow" || el.getAttribute("target") !== "_blank")
          problems.push({source, why: `a ${names} ${href} rel=${el.getAttribute("rel")}`});
      } else if (names) problems.push({source, why: `${tag} has ${names}`});
    }
  }
  return problems;
}"""

REPORTED = [
    "see http://a.example[x](http://b.example/ rel= download hidden id=y)",
    "http://a.example[label](http://b.example/p)",
    "http://a.example/`code`[l](http://b.example)",
    'x http://a.example[l](http://b.example/"onmouseover=alert(1))',
]

PIECES = ["[", "]", "(", ")", "http://", "https://", "a.example", "<", ">", '"', "'", "`", "*", "**", "_",
          "__", " ", "\n", "\n\n", "```", "\u0000", "0", "1", "rel=", "x", "/", "=", "&", ";", "javascript:"]  # fmt: skip


async def _problems(tab: Tab, sources: list[str]) -> list[dict[str, str]]:
    page = tab.page
    if page.url == "about:blank":
        await page.goto("/")
    result: list[dict[str, str]] = await page.evaluate(
        CHECK, {"sources": sources, "allowed": sorted(ALLOWED)}
    )
    return result


async def test_the_reported_injection_is_closed(tab: Tab) -> None:
    assert await _problems(tab, REPORTED) == []


async def test_fuzzed_markdown_never_escapes_its_tags(tab: Tab) -> None:
    rng = random.Random(20261128)
    sources = ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    problems = await _problems(tab, sources)
    assert problems == [], json.dumps(problems[:5])
