"""axe-core in the browser: the copy of ``axe.min.js`` that axe-playwright-python bundles, run in
the page under test and read back as its violations.

The script goes in through Playwright's ``evaluate`` (the DevTools protocol), which the page's
Content-Security-Policy does not govern, so the page is audited under its real policy."""

from __future__ import annotations

from importlib import resources
from typing import Any

from playwright.async_api import Page

AXE_SOURCE = (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")

# The WCAG 2.0-2.2 A and AA rules plus axe's best practices (landmarks, headings).
OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
BLOCKING_IMPACTS = frozenset({"critical", "serious"})
# Moderate in axe, but each one is a page people cannot find their way around (issue #35): two
# landmarks of one name, no main landmark, no top-level heading.
BLOCKING_RULES = frozenset({"landmark-unique", "landmark-one-main", "page-has-heading-one"})


async def violations(page: Page) -> list[dict[str, Any]]:
    """Every violation axe finds in the page as it is now."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE_SOURCE)
    results: dict[str, Any] = await page.evaluate("options => window.axe.run(document, options)", OPTIONS)
    found: list[dict[str, Any]] = results["violations"]
    return found


def blocking(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in found if v.get("impact") in BLOCKING_IMPACTS or v["id"] in BLOCKING_RULES]


def report(where: str, found: list[dict[str, Any]], nodes_each: int = 5) -> str:
    """One block per rule: id, impact, how many nodes, the first targets and axe's summary."""
    lines = []
    for v in found:
        lines.append(f"{where}: {v['id']} ({v.get('impact')}) on {len(v['nodes'])} node(s): {v['help']}")
        for node in v["nodes"][:nodes_each]:
            target = " ".join(str(t) for t in node["target"])
            summary = " ".join(str(node.get("failureSummary", "")).split())
            lines.append(f"    {target}: {summary}")
    return "\n".join(lines)
