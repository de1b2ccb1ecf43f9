"""Agent text, inbound webhook content and sender names are rendered inert: markup shows as
text, no script runs, links survive only for http(s). Plus a table test of the renderer."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.stack import Owner, RunningStack
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

PAYLOAD = (
    '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    '<a href="javascript:window.__xss=3">click</a> [me](javascript:window.__xss=4) '
    '**bold** <svg onload="window.__xss=5"></svg>'
)


async def test_xss_payloads_render_as_text(stack: RunningStack, tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="<b>evil</b> bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    from_agent = await user.post_message(agent["id"], text=PAYLOAD)
    hook = await user.agent.post(f"/api/v1/agents/{agent['id']}/inbound-webhooks", json={"name": "ci"})
    async with httpx.AsyncClient(timeout=30) as anyone:
        sent = await anyone.post(
            f"{stack.url}/api/webhooks/execute/{hook.json()['token']}",
            json={"content": PAYLOAD, "username": '<img src=x onerror="window.__xss=6">'},
        )
    assert sent.status_code == 200, sent.text

    bubble = page.locator(f"#msg-{from_agent['id']}")
    await expect(bubble.locator(".md")).to_contain_text("<script>window.__xss=2</script>")
    from_hook = page.locator("article.from-webhook")
    await expect(from_hook.locator(".md")).to_contain_text('<img src=x onerror="window.__xss=1">')
    await expect(from_hook.locator(".sender")).to_have_text('<img src=x onerror="window.__xss=6">')
    await expect(page.get_by_role("heading", name="<b>evil</b> bot")).to_be_visible()
    for message in (bubble, from_hook):
        # Only the safe subset became markup.
        await expect(message.locator(".md strong")).to_have_text("bold")
        await expect(
            message.locator(".md img, .md script, .md svg, .md [onerror], .md [onload]")
        ).to_have_count(0)
        await expect(message.locator('.md a[href^="javascript"]')).to_have_count(0)
    await page.reload()
    await expect(page.locator("article.from-webhook")).to_be_visible()
    assert await page.evaluate("window.__xss") is None


RENDER_CASES = [
    ("plain", "<p>plain</p>"),
    ("**b** *i* _u_ `c`", "<p><strong>b</strong> <em>i</em> <em>u</em> <code>c</code></p>"),
    ("snake_case_name 2*3*4", "<p>snake_case_name 2*3*4</p>"),
    ("a\nb\n\nc", "<p>a<br>b</p><p>c</p>"),
    ("```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"),
    ("`**not bold**`", "<p><code>**not bold**</code></p>"),
    (
        "[docs](https://example.com/a_b?x=1&y=2)",
        '<p><a href="https://example.com/a_b?x=1&amp;y=2" target="_blank" rel="noopener noreferrer nofollow">docs</a></p>',
    ),
    ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>"),
    ("[x](data:text/html,hi)", "<p>[x](data:text/html,hi)</p>"),
    (
        "see https://a.example/p.",
        '<p>see <a href="https://a.example/p" target="_blank" rel="noopener noreferrer nofollow">https://a.example/p</a>.</p>',
    ),
    ('<img src=x onerror="a()">', "<p>&lt;img src=x onerror=&quot;a()&quot;&gt;</p>"),
    (
        '[q](https://a.example/"onmouseover="x)',
        # The quote stays an entity inside the attribute: it cannot end it.
        '<p><a href="https://a.example/&quot;onmouseover=&quot;x" target="_blank" '
        'rel="noopener noreferrer nofollow">q</a></p>',
    ),
    ("\u0000**x**", "<p>\ufffd<strong>x</strong></p>"),
    ("**unclosed *too", "<p>**unclosed *too</p>"),
]


async def render(page: Page, sources: list[str]) -> list[str]:
    result: list[str] = await page.evaluate(
        "async (sources) => { const m = await import('/static/markdown.js');"
        " return sources.map((s) => m.renderMarkdown(s)); }",
        sources,
    )
    return result


async def test_markdown_renderer_table(tab: Tab) -> None:
    await tab.page.goto("/")
    got = await render(tab.page, [source for source, _ in RENDER_CASES])
    for (source, expected), html in zip(RENDER_CASES, got, strict=True):
        assert html == expected, source
