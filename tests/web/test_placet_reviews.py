"""Placet's Agent API v1 in the inbox: ghost and commented approvals, {mode, items} selections,
the twelve form field types (password masked), dismiss buttons, feedback for the agent, text
input with prefill and markdown, streamed messages that grow live, iterations, messages without
text, and attachments with safe previews and an authenticated download."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, Request, Route, expect

from tests.support.receiver import Receiver
from tests.support.stack import Owner, RunningStack
from tests.web.conftest import Tab, sign_in

pytestmark = pytest.mark.slow

# Where the form card screenshot goes (a temporary directory unless set).
SHOTS = os.environ.get("SAYSO_WEB_SHOTS")

FORM = {
    "type": "form",
    "payload": {
        "submitLabel": "Provision",
        "dismissLabel": "Not now",
        "fields": [
            {"name": "host", "label": "Host name", "type": "text", "required": True, "defaultValue": "db-7"},
            {"name": "env", "label": "Environment", "type": "select", "options": ["staging", "production"]},
            {"name": "at", "label": "Maintenance start", "type": "datetime", "required": True},
            {"name": "daily", "label": "Daily backup at", "type": "time", "defaultValue": "02:30"},
            {
                "name": "disk",
                "label": "Disk",
                "type": "range",
                "min": 10,
                "max": 200,
                "step": 5,
                "unit": "GB",
                "defaultValue": 40,
            },
            {"name": "cpu", "label": "CPU share", "type": "range", "unit": "%"},
            {
                "name": "replicas",
                "label": "Replicas",
                "type": "number",
                "min": 1,
                "max": 9,
                "defaultValue": 3,
            },
            {"name": "secret", "label": "Root password", "type": "password", "required": True},
            {"name": "ssl", "label": "Enable SSL", "type": "checkbox", "defaultValue": True},
            {"name": "contact", "label": "Contact", "type": "email"},
            {"name": "runbook", "label": "Runbook", "type": "url"},
            {"name": "go", "label": "Go-live", "type": "date"},
            {"name": "notes", "label": "Notes", "type": "textarea", "placeholder": "Anything else?"},
        ],
    },
}


async def review_of(owner: Owner, message_id: str) -> dict[str, Any]:
    resp = await owner.agent.get(f"/api/v1/reviews/{message_id}")
    assert resp.status_code == 200, resp.text
    review: dict[str, Any] = resp.json()["review"]
    return review


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


async def completed(card: Any) -> None:
    await expect(card.locator(".review")).to_have_attribute("data-review-status", "completed")


async def test_ghost_approval_with_comment_and_feedback(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="merge-bot")
    plain = await user.post_message(agent["id"], text="No comment box here", review={"type": "approval"})
    msg = await user.post_message(
        agent["id"],
        text="Merge **#812**?",
        review={
            "type": "approval",
            "payload": {
                "allowComment": True,
                "options": [
                    {"id": "merge", "label": "Merge", "style": "primary"},
                    {"id": "skip", "label": "Skip for now", "style": "ghost"},
                ],
            },
        },
    )
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    # Without allowComment there is no comment box, and no dismiss without dismissLabel.
    first = page.locator(f"#msg-{plain['id']}")
    await expect(first.get_by_role("button", name="Approve")).to_be_visible()
    await expect(first.locator("textarea[name=comment]")).to_have_count(0)
    await expect(first.locator(".btn-dismiss")).to_have_count(0)

    card = page.locator(f"#msg-{msg['id']}")
    ghost = card.get_by_role("button", name="Skip for now")
    await expect(ghost).to_have_class("btn btn-ghost")
    # An outline: transparent inside, a visible border.
    look = await ghost.evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.borderTopWidth, s.borderTopColor]; }"
    )
    assert look[0] in ("rgba(0, 0, 0, 0)", "transparent"), look
    assert look[1] != "0px", look
    assert look[2] != look[0], look
    await card.get_by_label("Comment").fill("  rebase first  ")
    # Feedback stays folded away until asked for.
    await expect(card.get_by_label("Feedback for the agent")).to_be_hidden()
    await card.get_by_role("button", name="Add feedback").click()
    await card.get_by_label("Feedback for the agent").fill("Split the migration into its own PR.")
    if SHOTS:
        await card.screenshot(path=str(Path(SHOTS) / "approval.png"))
    await ghost.click()
    await completed(card)
    await expect(card.locator(".answer .chip")).to_have_text("Skip for now")
    await expect(card.locator(".answer-comment")).to_have_text("rebase first")
    await expect(card.locator(".feedback-text")).to_have_text("Split the migration into its own PR.")
    review = await review_of(user, msg["id"])
    assert review["response"] == {"selectedOption": "skip", "comment": "rebase first"}
    assert review["feedback"] == "Split the migration into its own PR."

    # An approval answered without a comment sends none (and no feedback).
    await first.get_by_role("button", name="Approve").click()
    await completed(first)
    review = await review_of(user, plain["id"])
    assert review["response"] == {"selectedOption": "approve"}
    assert not review.get("feedback")


async def test_placet_selection_single_and_multi(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="triage-bot")
    items = [
        {"id": "bug", "label": "Bug", "description": "Something is broken"},
        {"id": "docs", "label": "Docs"},
        {"id": "perf", "label": "Performance"},
    ]
    multi = await user.post_message(
        agent["id"],
        text="Labels?",
        review={"type": "selection", "payload": {"mode": "multi", "items": items}},
    )
    single = await user.post_message(
        agent["id"],
        text="Priority?",
        review={
            "type": "selection",
            "payload": {
                "mode": "single",
                "submitLabel": "Set priority",
                "dismissLabel": "Skip",
                "items": [{"id": "p1", "label": "P1"}, {"id": "p2", "label": "P2"}],
            },
        },
    )
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    card = page.locator(f"#msg-{multi['id']}")
    await expect(card.get_by_text("Something is broken")).to_be_visible()
    await expect(card.locator("input[type=checkbox]")).to_have_count(3)
    await card.get_by_label("Bug").check()
    await card.get_by_label("Performance").check()
    await card.get_by_role("button", name="Confirm Selection").click()
    await completed(card)
    await expect(card.locator(".answer .chip")).to_have_text(["Bug", "Performance"])
    review = await review_of(user, multi["id"])
    assert review["response"] == {"selectedIds": ["bug", "perf"]}
    # Placet's payload is stored as sent.
    assert review["payload"] == {"mode": "multi", "items": items}

    card = page.locator(f"#msg-{single['id']}")
    await expect(card.locator("input[type=radio]")).to_have_count(2)
    await card.get_by_label("P1").check()
    await card.get_by_label("P2").check()
    await expect(card.get_by_label("P1")).not_to_be_checked()
    await card.get_by_role("button", name="Set priority").click()
    await completed(card)
    assert (await review_of(user, single["id"]))["response"] == {"selectedIds": ["p2"]}


async def test_form_with_every_field_type(tab: Tab, user: Owner, receiver: Receiver, tmp_path: Path) -> None:
    agent = await user.create_agent(name="infra-bot", webhookUrl=receiver.url("/hook"))
    msg = await user.post_message(agent["id"], text="Provision the **new database**?", review=FORM)
    # The API stores select options as {value, label}.
    assert msg["review"]["payload"]["fields"][1]["options"] == [
        {"value": "staging", "label": "staging"},
        {"value": "production", "label": "production"},
    ]
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    card = page.locator(f"#msg-{msg['id']}")

    # The right control for each type, defaults filled in.
    await expect(card.get_by_label("Host name")).to_have_value("db-7")
    await expect(card.get_by_label("Maintenance start")).to_have_attribute("type", "datetime-local")
    await expect(card.get_by_label("Daily backup at")).to_have_attribute("type", "time")
    await expect(card.get_by_label("Daily backup at")).to_have_value("02:30")
    await expect(card.get_by_label("Root password")).to_have_attribute("type", "password")
    await expect(card.get_by_label("Enable SSL")).to_be_checked()
    await expect(card.get_by_label("Replicas")).to_have_value("3")
    disk = card.get_by_label("Disk")
    await expect(disk).to_have_attribute("type", "range")
    await expect(disk).to_have_value("40")
    await expect(card.locator(".field-range output").first).to_have_text("40 GB")
    # Range without min/max/step: 0..100 by 1, starting at min ?? 0.
    cpu = card.get_by_label("CPU share")
    assert await cpu.evaluate("e => [e.min, e.max, e.step, e.value]") == ["0", "100", "1", "0"]
    await expect(card.locator(".field-range output").nth(1)).to_have_text("0 %")
    await expect(card.get_by_role("button", name="Provision")).to_be_visible()
    await expect(card.get_by_role("button", name="Not now")).to_be_visible()
    shown = await card.inner_text()
    assert "null" not in shown, shown
    assert "undefined" not in shown, shown

    await card.get_by_label("Environment").select_option("production")
    await card.get_by_label("Maintenance start").fill("2026-12-01T09:15")
    await card.get_by_label("Daily backup at").fill("03:45")
    await disk.fill("125")
    await expect(card.locator(".field-range output").first).to_have_text("125 GB")
    await card.get_by_label("Root password").fill("hunter2-very-secret")
    await card.get_by_label("Enable SSL").uncheck()
    await card.get_by_label("Notes").fill("after the backup")

    out = Path(SHOTS) if SHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    await page.set_viewport_size({"width": 1280, "height": 1500})  # the whole card in view
    await card.scroll_into_view_if_needed()
    await card.screenshot(path=str(out / "form-card.png"))

    await card.get_by_role("button", name="Provision").click()
    await completed(card)
    # The delivery badge changes once more (the bubble is redrawn); shoot after that.
    await expect(card.locator("[data-delivery]")).to_have_attribute("data-delivery", "webhook_delivered")
    await card.screenshot(path=str(out / "form-card-answered.png"))

    # Read back over REST: numbers are numbers, the checkbox a boolean, the password redacted.
    review = await review_of(user, msg["id"])
    assert review["response"] == {
        "host": "db-7",
        "env": "production",
        "at": "2026-12-01T09:15",
        "daily": "03:45",
        "disk": 125,
        "cpu": 0,
        "replicas": 3,
        "secret": "***REDACTED***",
        "ssl": False,
        "notes": "after the backup",
    }
    for key in ("disk", "cpu", "replicas"):
        assert type(review["response"][key]) is int, key
    # The agent's webhook gets the real password.
    hook = (await receiver.wait_for("/hook", count=1))[0].json()
    assert hook["response"]["secret"] == "hunter2-very-secret"

    # The answered card: option labels, units, and dots for the password.
    await expect(card.locator('dd[data-field="secret"]')).to_have_text("••••••••")
    await expect(card.locator('dd[data-field="disk"]')).to_have_text("125 GB")
    await expect(card.locator('dd[data-field="at"]')).to_have_text("2026-12-01 09:15")
    await expect(card.locator('dd[data-field="ssl"]')).to_have_text("No")
    assert "hunter2" not in await page.content()
    assert "REDACTED" not in await card.inner_text()
    # And after a reload (the REST read), still dots.
    await page.reload()
    await expect(page.locator(f'#msg-{msg["id"]} dd[data-field="secret"]')).to_have_text("••••••••")


async def test_dismiss_and_text_input(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="writer-bot")
    form = await user.post_message(agent["id"], text="Fill in later?", review=FORM)
    text = await user.post_message(
        agent["id"],
        text="Describe the incident",
        review={
            "type": "text-input",
            "payload": {
                "prefill": "## Impact\n\n",
                "placeholder": "What happened?",
                "markdown": True,
                "minLength": 20,
                "maxLength": 500,
                "dismissLabel": "No incident",
            },
        },
    )
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")

    # Dismiss: no field is checked (the password is required), the answer is {_dismissed: true}.
    card = page.locator(f"#msg-{form['id']}")
    await card.get_by_role("button", name="Not now").click()
    await completed(card)
    await expect(card.locator(".badge-dismissed")).to_have_text("Dismissed")
    await expect(card.locator(".answer-dismissed")).to_contain_text("Dismissed")
    assert (await review_of(user, form["id"]))["response"] == {"_dismissed": True}

    # Text input: prefilled, a markdown preview, a counter, the API's length rule.
    card = page.locator(f"#msg-{text['id']}")
    box = card.get_by_label("Your answer")
    await expect(box).to_have_value("## Impact\n\n")
    await expect(box).to_have_attribute("placeholder", "What happened?")
    await expect(box).to_have_attribute("maxlength", "500")
    await expect(card.locator(".counter")).to_have_text("11 / 500")
    await box.fill("## Impact\n\nThe **API** was down")
    await card.locator("details.preview summary").click()
    await expect(card.locator(".md-preview strong")).to_have_text("API")
    if SHOTS:
        await card.screenshot(path=str(Path(SHOTS) / "text-input.png"))
    await box.fill("too short")
    await card.get_by_role("button", name="Submit").click()
    await expect(card.locator('[data-field="response.text"]')).to_contain_text("at least 20")
    await box.fill("The **API** was down for <b>4 minutes</b>.  ")
    await card.get_by_role("button", name="Submit").click()
    await completed(card)
    # Trimmed; the answer is shown as markdown, markup in it as text.
    assert (await review_of(user, text["id"]))["response"] == {
        "text": "The **API** was down for <b>4 minutes</b>."
    }
    await expect(card.locator("blockquote.answer strong")).to_have_text("API")
    await expect(card.locator("blockquote.answer b")).to_have_count(0)
    await expect(card.locator("blockquote.answer")).to_contain_text("<b>4 minutes</b>")


async def test_streamed_message_grows_live(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="stream-bot")
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    await page.evaluate("window.__sameDocument = true")
    stream = "turn-1"
    created = await user.agent.post(
        "/api/v1/messages", json={"channelId": agent["id"], "text": "Looking", "streamId": stream}
    )
    assert created.status_code == 201, created.text
    msg = created.json()
    assert msg["streamState"] == "streaming"
    article = page.locator(f"#msg-{msg['id']}")
    await expect(article.locator(".md")).to_have_text("Looking")
    await expect(article.locator(".streaming")).to_be_visible()
    await expect(article).to_have_attribute("data-stream-state", "streaming")

    step = await user.agent.post(
        f"/api/v1/messages/streams/{stream}/status",
        json={"channelId": agent["id"], "text": "search_docs(query='retention')", "toolHint": True},
    )
    assert step.status_code == 201, step.text
    await expect(article.locator(".status-steps .step")).to_have_count(1)
    await expect(article.locator(".step-tool .step-text")).to_have_text("search_docs(query='retention')")

    for text in ("Looking at the logs", "Looking at the logs: **3 errors** so far"):
        patched = await user.agent.patch(
            f"/api/v1/messages/streams/{stream}", json={"channelId": agent["id"], "text": text}
        )
        assert patched.status_code == 200, patched.text
        await expect(article.locator(".md")).to_contain_text(text.replace("**", ""))
    await expect(article.locator(".md strong")).to_have_text("3 errors")
    await expect(article.locator(".streaming")).to_be_visible()
    if SHOTS:
        await article.screenshot(path=str(Path(SHOTS) / "streaming.png"), animations="disabled")

    done = await user.agent.patch(
        f"/api/v1/messages/streams/{stream}",
        json={
            "channelId": agent["id"],
            "text": "Looking at the logs: **3 errors**, all retried.",
            "complete": True,
        },
    )
    assert done.status_code == 200, done.text
    await expect(article.locator(".md")).to_have_text("Looking at the logs: 3 errors, all retried.")
    await expect(article.locator(".streaming")).to_have_count(0)
    await expect(article).to_have_attribute("data-stream-state", "complete")
    # The steps fold away once the message is complete.
    await expect(article.locator("details.steps summary")).to_have_text("1 step")
    # One bubble, updated in place, in the same document (no reload).
    await expect(page.locator("article.msg")).to_have_count(1)
    assert await page.evaluate("window.__sameDocument") is True


async def test_iterations_statusless_and_textless_messages(tab: Tab, user: Owner) -> None:
    agent = await user.create_agent(name="draft-bot")
    v1 = await user.post_message(agent["id"], text="Draft 1", review={"type": "approval"})
    assert (await user.respond(v1["id"], {"selectedOption": "reject"})).status_code == 200
    v2 = await user.post_message(
        agent["id"], text="Draft 2", review={"type": "approval"}, iterationOf=v1["id"]
    )
    assert v2["iteration"] == 2
    bare = await user.agent.post("/api/v1/messages", json={"channelId": agent["id"], "status": "success"})
    assert bare.status_code == 201, bare.text
    assert bare.json()["text"] is None
    plain = await user.post_message(agent["id"], text="no status")
    assert plain["status"] is None
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    await expect(page.locator(f"#msg-{v2['id']} .badge-iteration")).to_have_text("v2")
    await expect(page.locator(f"#msg-{v1['id']} .badge-iteration")).to_have_count(0)
    no_text = page.locator(f"#msg-{bare.json()['id']}")
    await expect(no_text.locator(".badge-success")).to_have_text("success")
    await expect(no_text.locator(".md")).to_have_count(0)
    await expect(page.locator(f"#msg-{plain['id']} .md")).to_have_text("no status")


MARKDOWN_FILE = (
    '# Plan\n\n**Step 1**: drain\n\n<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
)
PLAIN_FILE = "line 1\n<b>not bold</b>\n"


async def test_attachments_preview_and_authenticated_download(tab: Tab, user: Owner) -> None:
    """The message list is real; its attachments are added in the browser (the files API is
    another piece), so the rendering, the previews and the download are what is tested."""
    agent = await user.create_agent(name="files-bot")
    msg = await user.post_message(agent["id"], text="Report attached")
    attachments = [
        {
            "id": "att_md",
            "channelId": agent["id"],
            "messageId": msg["id"],
            "filename": "plan.md",
            "mimeType": "text/markdown",
            "size": len(MARKDOWN_FILE),
            "textContent": MARKDOWN_FILE,
            "createdAt": msg["createdAt"],
        },
        {
            "id": "att_txt",
            "channelId": agent["id"],
            "messageId": msg["id"],
            "filename": "notes.txt",
            "mimeType": "text/plain",
            "size": len(PLAIN_FILE),
            "textContent": PLAIN_FILE,
            "createdAt": msg["createdAt"],
        },
        {
            "id": "att_bin",
            "channelId": agent["id"],
            "messageId": msg["id"],
            "filename": "dump.bin",
            "mimeType": "application/octet-stream",
            "size": 2_500_000,
            "createdAt": msg["createdAt"],
        },
    ]

    async def with_attachments(route: Route) -> None:
        resp = await route.fetch()
        page_ = await resp.json()
        for m in page_["data"]:
            if m["id"] == msg["id"]:
                m["attachments"] = attachments
        await route.fulfill(response=resp, body=json.dumps(page_))

    seen: list[Request] = []

    async def file(route: Route) -> None:
        seen.append(route.request)
        if "att_bin" in route.request.url:
            await route.fulfill(
                status=200,
                body=b"\x00\x01binary",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Disposition": 'inline; filename="dump.bin"',
                },
            )
        else:
            await route.fulfill(
                status=404,
                content_type="application/json",
                body=json.dumps({"error": {"code": "not_found", "message": "attachment not found"}}),
            )

    page: Page = tab.page
    await page.route(lambda url: "/api/v1/messages?" in url, with_attachments)
    await page.route("**/api/v1/files/*/download", file)
    await sign_in(page, user, f"#/c/{agent['id']}")
    article = page.locator(f"#msg-{msg['id']}")
    await expect(article.locator(".attachment")).to_have_count(3)
    md = article.locator('[data-attachment-id="att_md"]')
    await expect(md.locator(".att-preview h1, .att-preview p").first).to_be_visible()
    await expect(md.locator(".att-preview strong")).to_have_text("Step 1")
    await expect(md.locator(".att-preview img, .att-preview script")).to_have_count(0)
    await expect(md.locator(".att-preview")).to_contain_text('<img src=x onerror="window.__xss=1">')
    txt = article.locator('[data-attachment-id="att_txt"]')
    await expect(txt.locator("pre.att-preview")).to_have_text(PLAIN_FILE)
    await expect(txt.locator("pre.att-preview b")).to_have_count(0)
    binary = article.locator('[data-attachment-id="att_bin"]')
    await expect(binary.locator(".att-preview")).to_have_count(0)
    await expect(binary.locator(".att-meta")).to_have_text("application/octet-stream · 2.4 MB")
    if SHOTS:
        await article.screenshot(path=str(Path(SHOTS) / "attachments.png"))

    # The download carries the user's JWT and saves under the file's name.
    async with page.expect_download() as info:
        await binary.get_by_role("link", name="dump.bin").click()
    download = await info.value
    assert download.suggested_filename == "dump.bin"
    assert read_bytes(await download.path()) == b"\x00\x01binary"
    assert seen[-1].headers.get("authorization", "").startswith("Bearer "), seen[-1].headers
    # A failed download says so next to the file.
    await txt.get_by_role("link", name="notes.txt").click()
    await expect(txt.locator(".att-status")).to_have_text("File not found.")
    assert await page.evaluate("window.__xss") is None


async def test_real_attachments_download_with_the_session(tab: Tab, user: Owner, stack: RunningStack) -> None:
    """End to end with the files API: an uploaded file and an inline text attachment."""
    agent = await user.create_agent(name="report-bot")
    presigned = await user.agent.post(
        "/api/v1/files/upload",
        json={"filename": "metrics.bin", "mimeType": "application/octet-stream", "channelId": agent["id"]},
    )
    if presigned.status_code == 404:
        pytest.skip("the files API is not in this build")
    assert presigned.status_code == 201, presigned.text
    upload = presigned.json()
    data = bytes(range(256)) * 4
    parts = urlsplit(upload["uploadUrl"])  # built on SAYSO_PUBLIC_URL; the edge is elsewhere
    async with stack.client() as anyone:  # the signed URL needs no credentials
        put = await anyone.put(parts.path, content=data)
    assert put.status_code == 200, put.text
    msg = await user.post_message(
        agent["id"],
        text="Weekly report",
        attachmentIds=[upload["id"]],
        textAttachments=[{"content": "## Summary\n\n**All green**", "filename": "summary.md"}],
    )
    assert [a["filename"] for a in msg["attachments"]] == ["metrics.bin", "summary.md"]
    page = tab.page
    await sign_in(page, user, f"#/c/{agent['id']}")
    article = page.locator(f"#msg-{msg['id']}")
    summary = article.locator(".attachment").filter(has_text="summary.md")
    await expect(summary.locator(".att-preview strong")).to_have_text("All green")
    async with page.expect_download() as info:
        await article.get_by_role("link", name="metrics.bin").click()
    download = await info.value
    assert download.suggested_filename == "metrics.bin"
    assert read_bytes(await download.path()) == data
    await expect(article.locator(".att-status")).to_have_count(2)
    for status in await article.locator(".att-status").all():
        await expect(status).to_have_text("")
