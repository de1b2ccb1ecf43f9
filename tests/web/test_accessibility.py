"""The inbox for everyone (issue #35): axe-core over every page of the web app in Debian's
Chromium, in the light and dark schemes, at desktop and phone width, with every review kind on
screen; then what axe does not check: the contrast of the focus ring and of field borders
(WCAG 1.4.11), and reflow at 320 px (WCAG 1.4.10).

One owner's inbox is filled once for the module (two channels, every review kind pending, some
answered, dismissed and expired, every risk badge, two cards ticked for a bulk answer, a feedback
box and a deliveries panel open, a form showing the API's errors, a channel policy with an error
under a rule's field and a dry run's outcome, webhook endpoints with one's editor showing the
API's refusal of its filter), and each scheme and screen visits the pages in
turn."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack, eventually
from tests.web import axe
from tests.web.conftest import TIMEOUT_MS, sign_in
from tests.web.test_edit_before_approve import FLAT as EDITABLE
from tests.web.test_edit_before_approve import NESTED as EDITABLE_JSON
from tests.web.test_placet_reviews import FORM as PLACET_FORM
from tests.web.test_reviews import APPROVAL, FORM, FREEFORM, SELECTION, TEXT

pytestmark = pytest.mark.slow

DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
NARROW: ViewportSize = {"width": 320, "height": 640}

Scheme = Literal["light", "dark"]

SELECTION_OPTIONS = [{"id": "eu", "label": "Europe"}, {"id": "us", "label": "United States"}]
# Enough cards that a rule broken once per card shows up many times over, few enough that the
# inbox's first page (50) holds them all and axe stays quick.
BULK = 24
RISKS = ["low", "medium", "high", "critical", None]


@dataclass
class Filled:
    owner: Owner
    release: dict[str, Any]
    bulk: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)
    channel_count: int = 0
    inbox_count: int = 0


async def fill(owner: Owner, receiver: Receiver) -> Filled:
    release = await owner.create_agent(name="release-bot", webhookUrl=receiver.url("/hook"))
    bulk = await owner.create_agent(name="bulk-bot", description="Many approvals at once")
    filled = Filled(owner, release, bulk)
    rid = release["id"]
    # Webhook endpoints: the channel's (one disabled, with its reason) and an account-wide one, so
    # the settings list, the deliveries panel and the operator page's endpoint rows are on screen.
    for path, body in [
        (f"/api/v1/agents/{rid}/endpoints", {"url": receiver.url("/audit"), "description": "Audit log"}),
        (f"/api/v1/agents/{rid}/endpoints", {"url": receiver.url("/paused"), "disabled": True}),
        ("/api/v1/endpoints", {"url": receiver.url("/lake"), "description": "Data lake"}),
    ]:
        made = await owner.human.post(path, json=body)
        assert made.status_code == 201, made.text
    reviews: dict[str, tuple[str, dict[str, Any]]] = {
        "approval": ("Ship **v2.4** to production?", APPROVAL),
        "plain": ("Rotate the staging keys?", {"type": "approval"}),
        "single": (
            "Priority?",
            {
                "type": "selection",
                "payload": {
                    "mode": "single",
                    "submitLabel": "Set priority",
                    "dismissLabel": "Skip",
                    "items": [
                        {"id": "p1", "label": "P1", "description": "Drop everything"},
                        {"id": "p2", "label": "P2"},
                    ],
                },
            },
        ),
        "multi": ("Regions?", SELECTION),
        "form": ("Who owns the rollout?", FORM),
        "placet-form": ("Provision the database?", PLACET_FORM),
        "text": ("Name the release", TEXT),
        "markdown": (
            "Write the incident summary",
            {
                "type": "text-input",
                "payload": {"prefill": "## Impact\n\n", "markdown": True, "minLength": 20, "maxLength": 500},
            },
        ),
        "freeform": ("Any JSON you like", FREEFORM),
        "default": (
            "Rotate the production keys?",
            {
                "type": "approval",
                "onExpire": {"response": {"selectedOption": "reject", "comment": "no answer"}},
            },
        ),
        "answered": ("Merge #812?", APPROVAL),
        "dismissed": (
            "Label the issue",
            {"type": "selection", "payload": {"options": SELECTION_OPTIONS, "dismissLabel": "Not now"}},
        ),
        "answered-form": ("Budget owner?", FORM),
        "editable": ("Pay alice?", EDITABLE),
        "editable-json": ("Drop the users table?", EDITABLE_JSON),
        "answered-edit": ("Pay bob?", EDITABLE),
    }
    for key, (text, review) in reviews.items():
        filled.ids[key] = (await owner.post_message(rid, text=text, review=review))["id"]
    for status, text in [
        ("success", "Deployed v2.3"),
        ("warning", "Disk at 85 %"),
        ("error", "Backup failed"),
    ]:
        await owner.post_message(rid, text=text, status=status)
    answers: dict[str, Any] = {
        "answered": {"selectedOption": "ship", "comment": "after the freeze"},
        "dismissed": {"_dismissed": True},
        "answered-form": {"owner": "ops@example.com", "region": "eu", "budget": 10},
        "answered-edit": {
            "selectedOption": "approve",
            "editedArgs": {"to": "bob", "amount": 60, "currency": "USD", "express": True},
        },
    }
    for key, response in answers.items():
        resp = await owner.respond(filled.ids[key], response)
        assert resp.status_code == 200, resp.text
    expired = await owner.post_message(
        rid, text="Restart the cache?", review={"type": "approval", "expiresInSeconds": 1}
    )
    filled.ids["expired"] = expired["id"]

    async def has_expired() -> bool:
        resp = await owner.agent.get(f"/api/v1/reviews/{expired['id']}")
        return bool(resp.json()["review"]["status"] == "expired")

    # Expired before any page opens: the inbox counts only what is still waiting.
    await eventually(has_expired, 30, "the one-second review expired")
    for i in range(BULK):
        # Every risk badge on screen (and cards without one).
        risk: dict[str, Any] = {"metadata": {"risk": RISKS[i % 5]}} if RISKS[i % 5] else {}
        if i == 0:  # a tool call: its card offers "Approve, and allow the same for 1 h"
            risk = {"metadata": {"risk": "low", "tool": "deploy", "args": {"env": "staging"}}}
        await owner.post_message(
            bulk["id"], text=f"Approve batch job {i + 1} of {BULK}?", review={"type": "approval"}, **risk
        )
    # A policy on the release channel that none of its messages matches: the settings page shows
    # its rule, its versions and (prepared) an error and a dry run.
    saved = await owner.agent.put(
        f"/api/v1/agents/{rid}/policy",
        json={
            "rules": [
                {"name": "never", "match": {"metadata.tool": "none"}, "action": "approve", "risk": "low"}
            ]
        },
    )
    assert saved.status_code == 200, saved.text
    filled.channel_count = len(reviews) + 3 + 1
    filled.inbox_count = len(reviews) - len(answers) + BULK
    return filled


@pytest.fixture(scope="module")
async def filled(stack: RunningStack) -> AsyncIterator[Filled]:
    receiver = await Receiver().start()
    try:
        async with await stack.new_owner() as owner:
            yield await fill(owner, receiver)
    finally:
        await receiver.stop()


@dataclass
class Visit:
    """A page of the app, how to tell it is ready, and what to open on it before the audit."""

    name: str
    route: str
    ready: Callable[[Page, Filled], Awaitable[None]]
    prepare: Callable[[Page, Filled], Awaitable[None]] | None = None


async def inbox_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator(".inbox-list > article.msg")).to_have_count(filled.inbox_count)


async def channel_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator(".messages > article.msg")).to_have_count(filled.channel_count)
    expired = page.locator(f"#msg-{filled.ids['expired']} .review")
    await expect(expired).to_have_attribute("data-review-status", "expired", timeout=30_000)


async def channel_opened(page: Page, filled: Filled) -> None:
    """A feedback box, a deliveries panel and the API's errors under a form's fields on screen."""
    card = page.locator(f"#msg-{filled.ids['approval']}")
    await card.get_by_role("button", name="Add feedback").click()
    answered = page.locator(f"#msg-{filled.ids['answered']}")
    await answered.get_by_role("button", name="Deliveries").click()
    await expect(answered.locator(".deliveries")).to_be_visible()
    form = page.locator(f"#msg-{filled.ids['form']}")
    await form.get_by_role("button", name="Submit").click()
    await expect(form.locator(".field-error").first).to_be_visible()
    # An editable action with a change listed and the API's refusal at the edited field.
    editable = page.locator(f"#msg-{filled.ids['editable']}")
    await editable.get_by_label("amount").fill("900")
    refusal = editable.locator(".field-error:not([hidden])")
    # One more tap if the first showed nothing: a clean-clone run at phone width once found no
    # refusal 10 s after the tap (not reproduced; the edit-before-approve tests check the refusal
    # itself). This walk is about the page's accessibility with the refusal on screen.
    for attempt in range(2):
        await editable.get_by_role("button", name="Approve").click()
        try:
            await expect(refusal).to_be_visible()
            break
        except AssertionError:
            if attempt:
                raise
    await expect(editable.locator(".edit-diff li")).to_have_count(1)


async def inbox_selected(page: Page, filled: Filled) -> None:
    """Two cards ticked for a bulk answer: the bar's buttons in their enabled state."""
    boxes = page.get_by_role("checkbox", name=re.compile("^Select: Approve batch job"))
    await boxes.nth(0).click()
    await boxes.nth(1).click()
    await expect(page.locator(".bulk-count")).to_have_text("2 selected")


async def settings_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator("#tr-title")).to_be_visible()
    await expect(page.locator('[data-section="endpoints"] .endpoint')).to_have_count(3)
    await expect(page.locator(".policy-version")).to_have_attribute("data-version", "1")


async def settings_opened(page: Page, filled: Filled) -> None:
    """The policy editor showing the API's error under a rule's field, its versions open, and a
    dry run's outcome."""
    policy = page.locator('[data-section="policy"]')
    rule = policy.locator("fieldset.rule").first
    await rule.get_by_label("Match (JSON filter)").fill('{"metadata.amount": {"$gtx": 1}}')
    await policy.get_by_role("button", name="Save policy").click()
    await expect(rule.locator(".field-error:not([hidden])")).to_be_visible()
    await policy.locator("summary", has_text="Earlier versions").click()
    await expect(policy.get_by_role("button", name="Load version 1 into the editor")).to_be_visible()
    await policy.get_by_role("button", name="Test").click()
    await expect(policy.locator(".dry-outcome")).to_be_visible()
    # An endpoint's editor with the API's refusal of its filter at the field, a new endpoint's
    # form, and the recover and replay controls open.
    endpoints = page.locator('[data-section="endpoints"]')
    await endpoints.get_by_role("button", name="Edit Audit log").click()
    edit = endpoints.get_by_role("form", name="Edit Audit log")
    await edit.get_by_label("Filter (JSON)").fill('{"message.text": {"$gtx": 1}}')
    await edit.get_by_role("button", name="Save endpoint").click()
    await expect(edit.locator(".field-error:not([hidden])")).to_be_visible()
    await endpoints.locator(".endpoint").nth(1).locator("summary", has_text="Recover and replay").click()
    await endpoints.get_by_role("button", name="Add endpoint").click()
    await expect(endpoints.get_by_role("form", name="New endpoint")).to_be_visible()


async def ops_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator('[data-stat="oldest"] .tile-value')).not_to_have_text("")
    await expect(page.locator('[data-section="endpoints"] tbody tr')).to_have_count(3)


async def notifications_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator('[data-section="preferences"]').get_by_label("E-mail me")).to_be_checked()


async def audit_ready(page: Page, filled: Filled) -> None:
    """The answers and the policy's save are in the log (the relay stores decisions as it
    publishes them, so they may come a moment after the answers)."""
    rows = page.locator(".audit-table tbody tr")
    for _ in range(20):
        if await rows.count() >= 4:
            break
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_timeout(500)
    await expect(rows.first).to_be_visible()
    assert await rows.count() >= 4


async def channels_ready(page: Page, filled: Filled) -> None:
    await expect(page.locator(".channel-link")).to_have_count(2)


def visits(filled: Filled) -> list[Visit]:
    rid = filled.release["id"]
    return [
        Visit("inbox", "#/inbox", inbox_ready, inbox_selected),
        Visit("channel", f"#/c/{rid}", channel_ready, channel_opened),
        Visit("settings", f"#/c/{rid}/settings", settings_ready, settings_opened),
        Visit("operator", "#/ops", ops_ready),
        Visit("notifications", "#/notifications", notifications_ready),
        Visit("audit", "#/audit", audit_ready),
        Visit("channels", "#/channels", channels_ready),
    ]


@contextlib.asynccontextmanager
async def opened(
    browser: Browser, stack: RunningStack, scheme: Scheme, viewport: ViewportSize
) -> AsyncIterator[tuple[BrowserContext, Page, list[str]]]:
    phone = viewport["width"] < 700
    context = await browser.new_context(
        base_url=stack.url, viewport=viewport, color_scheme=scheme, is_mobile=phone, has_touch=phone
    )
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield context, page, errors
    finally:
        await context.close()


async def each_page(page: Page, filled: Filled) -> AsyncIterator[str]:
    """Opens the login page, then, signed in, every page of ``visits`` ready and prepared, and
    yields each one's name while it is on screen."""
    await page.goto("/#/login")
    await expect(page.get_by_role("heading", name="Sign in to Sayso")).to_be_visible()
    yield "login"
    await sign_in(page, filled.owner)
    for visit in visits(filled):
        await page.goto(f"/{visit.route}")
        await visit.ready(page, filled)
        if visit.prepare:
            await visit.prepare(page, filled)
        yield visit.name


@pytest.mark.parametrize(
    ("scheme", "viewport"),
    [("light", DESKTOP), ("dark", DESKTOP), ("light", PHONE), ("dark", PHONE)],
    ids=["light-desktop", "dark-desktop", "light-phone", "dark-phone"],
)
async def test_no_page_has_a_serious_axe_violation(
    browser: Browser, stack: RunningStack, filled: Filled, scheme: Scheme, viewport: ViewportSize
) -> None:
    found: list[str] = []
    async with opened(browser, stack, scheme, viewport) as (_, page, errors):
        assert await page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
        async for name in each_page(page, filled):
            if blocked := axe.blocking(await axe.violations(page)):
                found.append(axe.report(name, blocked))
        assert not errors, errors
    assert not found, f"axe-core {scheme} at {viewport['width']} px:\n" + "\n".join(found)


def parse_rgb(css: str) -> tuple[float, float, float]:
    """``rgb(r, g, b)`` or ``rgba(r, g, b, a)`` as Chromium serialises a computed colour."""
    parts = [float(p) for p in re.findall(r"[\d.]+", css)]
    assert len(parts) in (3, 4), css
    return parts[0], parts[1], parts[2]


def luminance(css: str) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in parse_rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two opaque colours."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize(
    ("css", "other", "ratio"),
    [
        ("rgb(255, 255, 255)", "rgb(0, 0, 0)", 21.0),
        ("rgb(0, 0, 0)", "rgb(255, 255, 255)", 21.0),
        ("rgb(118, 118, 118)", "rgb(255, 255, 255)", 4.54),
        ("rgba(255, 176, 0, 1)", "rgb(255, 255, 255)", 1.83),  # the old focus ring on white
        ("rgb(217, 221, 227)", "rgb(255, 255, 255)", 1.36),  # the old field border
        ("rgb(10, 20, 30)", "rgb(10, 20, 30)", 1.0),
    ],
)
def test_contrast_ratio(css: str, other: str, ratio: float) -> None:
    assert contrast(css, other) == pytest.approx(ratio, abs=0.01)


# The colour that shows behind an element: its own background, else the nearest ancestor's.
BEHIND_JS = """
(el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    const alpha = c.startsWith("rgba") ? Number(c.split(",")[3].replace(")", "")) : 1;
    if (alpha > 0) return c;
  }
  return getComputedStyle(document.documentElement).backgroundColor;
}
"""
RING_JS = f"""
(el) => {{
  const behind = {BEHIND_JS};
  el.focus();
  const s = getComputedStyle(el);
  return {{
    visible: el.matches(":focus-visible"), style: s.outlineStyle, width: parseFloat(s.outlineWidth),
    color: s.outlineColor, behind: behind(el.parentElement),
  }};
}}
"""
EDGE_JS = f"""
(el) => {{
  const behind = {BEHIND_JS};
  const s = getComputedStyle(el);
  return {{ border: s.borderTopColor, width: parseFloat(s.borderTopWidth), inside: behind(el), outside: behind(el.parentElement) }};
}}
"""
FIELDS = (
    "input[type=text], input[type=email], input[type=url], input[type=number], input[type=date], "
    "input[type=time], input[type=datetime-local], input[type=password], select, textarea"
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_focus_ring_and_field_edges_stand_out_3_to_1(
    browser: Browser, stack: RunningStack, filled: Filled, scheme: Scheme
) -> None:
    """WCAG 1.4.11, which axe does not check: the focus ring against what it is drawn on (a
    card, the top bar, the page), and every field's edge against its inside and its outside."""
    poor: list[str] = []
    async with opened(browser, stack, scheme, DESKTOP) as (_, page, errors):
        await page.goto("/#/login")
        await expect(page.get_by_label("E-mail")).to_be_visible()
        await sign_in(page, filled.owner, f"#/c/{filled.release['id']}")
        await channel_ready(page, filled)
        await page.keyboard.press("Shift+Tab")  # keyboard use: a focused control shows its ring
        card = page.locator(f"#msg-{filled.ids['approval']}")
        answered = page.locator(f"#msg-{filled.ids['answered']}")
        rings = {
            "answer button on a card": card.get_by_role("button", name="Ship it"),
            "comment box on a card": card.get_by_label("Comment"),
            "button on a message": answered.get_by_role("button", name="Deliveries"),
            "top bar link": page.get_by_role("link", name="Operator"),
            "sidebar link": page.locator(".channel-link").first,
            "composer": page.get_by_label("Message", exact=True),
        }
        for what, control in rings.items():
            ring = await control.evaluate(RING_JS)
            ratio = contrast(ring["color"], ring["behind"])
            if not ring["visible"] or ring["style"] == "none" or ring["width"] < 2 or ratio < 3:
                poor.append(f"focus ring of the {what}: {ring} ({ratio:.2f}:1)")
        edges = page.locator(".review").locator(FIELDS)
        assert await edges.count() > 20
        for i in range(await edges.count()):
            field = edges.nth(i)
            edge = await field.evaluate(EDGE_JS)
            for side in ("inside", "outside"):
                ratio = contrast(edge["border"], edge[side])
                if edge["width"] < 1 or ratio < 3:
                    name = await field.evaluate("el => el.id || el.name")
                    poor.append(f"edge of field {name} against its {side}: {edge} ({ratio:.2f}:1)")
        assert not errors, errors
    assert not poor, f"{scheme}: under 3:1\n" + "\n".join(poor)


OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"
# What reaches past the screen's left or right edge: a page or a panel that scrolls (or clips)
# sideways. Code blocks and tables may scroll on their own (WCAG's exception), so what is inside
# them is not counted, but they themselves must fit.
PAST_THE_EDGE_JS = """
() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  for (const el of document.querySelectorAll("#app *")) {
    if (el.parentElement.closest("pre, .table-wrap, .att-preview") || el.closest(".visually-hidden, .skip-link")) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (box.right > width + 1 || box.left < -1) {
      const name = el.tagName.toLowerCase() + (el.id ? `#${el.id}` : "") + (el.className && typeof el.className === "string" ? `.${el.className.trim().split(/\\s+/).join(".")}` : "");
      found.push(`${name} spans ${Math.round(box.left)}-${Math.round(box.right)} px`);
    }
  }
  return found.slice(0, 8);
}
"""
SHOTS = os.environ.get("SAYSO_A11Y_SHOTS")


async def test_every_page_reflows_at_320_px(browser: Browser, stack: RunningStack, filled: Filled) -> None:
    """WCAG 1.4.10 (a 1,280 px screen at 400 % zoom): nothing wider than the screen, a compact
    top bar, and the messages get most of the height."""
    wide: list[str] = []
    async with opened(browser, stack, "light", NARROW) as (_, page, errors):
        async for name in each_page(page, filled):
            if name == "login":
                wide += [f"login: {past}" for past in await page.evaluate(PAST_THE_EDGE_JS)]
                continue
            if SHOTS:
                await page.screenshot(path=f"{SHOTS}/{name}-320.png")
            if (extra := await page.evaluate(OVERFLOW_JS)) > 0:
                wide.append(f"{name}: the page is {extra} px wider than the screen")
            wide += [f"{name}: {past}" for past in await page.evaluate(PAST_THE_EDGE_JS)]
            bar = await page.locator(".topbar").bounding_box()
            assert bar is not None
            # 131 px before (three rows); two rows of links and controls is about 80.
            if bar["height"] > NARROW["height"] * 0.14:
                wide.append(f"{name}: the top bar is {bar['height']} px tall")
            if name in ("inbox", "channel"):
                area = await page.locator(".scroller").bounding_box()
                assert area is not None
                if area["height"] < NARROW["height"] * 0.55:
                    wide.append(f"{name}: the message area is {area['height']} px tall")
        assert not errors, errors
    assert not wide, "at 320 px:\n" + "\n".join(wide)
