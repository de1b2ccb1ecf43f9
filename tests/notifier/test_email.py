"""E-mail through a real SMTP server: what arrives, and the one-click answer links in it (a GET
answers nothing, the POST answers once, as the recipient, through first-response-wins)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.notifier.conftest import Notify
from tests.notifier.mailbox import Mail
from tests.support.stack import Owner, eventually

pytestmark = pytest.mark.slow

APPROVAL = {
    "type": "approval",
    "payload": {
        "options": [
            {"id": "approve", "label": "Ship it", "style": "primary"},
            {"id": "reject", "label": "Hold <b>back</b>", "style": "danger"},
        ]
    },
}


async def mail_for(notify: Notify, address: str, count: int = 1, timeout: float = 20.0) -> list[Mail]:
    async def arrived() -> list[Mail] | None:
        found = notify.mailbox.to(address)
        return found if len(found) >= count else None

    return await eventually(arrived, timeout, f"{count} mail(s) to {address}")


async def review(person: Owner, **review: Any) -> dict[str, Any]:
    agent = await person.create_agent(name="deploy-bot")
    return await person.post_message(
        agent["id"], text="Deploy v2.1 to <production>?\nChangelog: fixes & more", review=review or APPROVAL
    )


async def test_a_new_review_arrives_as_html_and_text_with_one_link_per_option(
    notify: Notify, person: Owner
) -> None:
    msg = await review(person)
    (mail,) = await mail_for(notify, person.email)
    assert mail.subject.startswith("[Sayso] Review requested: Deploy v2.1 to <production>?")
    assert mail.message["From"] == "Sayso <sayso@notifier.test>"
    text, page = mail.part("plain"), mail.part("html")
    assert "Changelog: fixes & more" in text
    # Agent text is escaped in the HTML part: it can show markup, never become it.
    assert "Deploy v2.1 to &lt;production&gt;?" in page
    assert "Hold &lt;b&gt;back&lt;/b&gt;" in page
    assert "<production>" not in page
    links = mail.links()
    assert len(links) == 2
    assert all(link.startswith(f"{notify.api_url}/a/") for link in links)
    assert f"#/c/{msg['channelId']}" in text


async def test_opening_a_link_answers_nothing_and_its_post_answers_once_as_the_recipient(
    notify: Notify, person: Owner
) -> None:
    msg = await review(person)
    (mail,) = await mail_for(notify, person.email)
    approve = mail.links()[0]
    async with httpx.AsyncClient(timeout=10) as browser:
        # A mail scanner (or a person) opening the link sees a confirmation page; nothing changes.
        for _ in range(2):
            page = await browser.get(approve)
            assert page.status_code == 200
            assert "Confirm: Ship it" in page.text
            assert "<production>" not in page.text
            assert page.headers["cache-control"] == "no-store"
            assert "form-action 'self'" in page.headers["content-security-policy"]
        state = await person.agent.get(f"/api/v1/reviews/{msg['id']}")
        assert state.json()["review"]["status"] == "pending"
        done = await browser.post(approve)
        assert done.status_code == 200, done.text
        assert "Answer recorded" in done.text
        answered = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert answered["status"] == "completed"
        assert answered["response"] == {"selectedOption": "approve"}
        assert answered["respondedBy"] == person.user_id
        # Single use: the same link, and the other option's link, answer nothing more.
        again = await browser.post(approve)
        assert again.status_code == 409
        assert "already used" in again.text
        other = await browser.post(mail.links()[1])
        assert other.status_code == 409
        after = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
        assert after["response"] == {"selectedOption": "approve"}
        assert after["respondedAt"] == answered["respondedAt"]


async def test_a_tampered_or_foreign_link_answers_nothing(notify: Notify, person: Owner) -> None:
    msg = await review(person)
    (mail,) = await mail_for(notify, person.email)
    link = mail.links()[0]
    body, mac = link.rsplit("/", 1)[1].split(".")
    forged = f"{notify.api_url}/a/{body}.{mac[:-2]}{'AA' if not mac.endswith('AA') else 'BB'}"
    async with httpx.AsyncClient(timeout=10) as browser:
        for url in (forged, f"{notify.api_url}/a/garbage", f"{notify.api_url}/a/{'x' * 1200}"):
            page = await browser.post(url)
            assert page.status_code in (403, 422), (url, page.status_code)
    state = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert state["status"] == "pending"


async def test_a_link_after_the_review_was_answered_in_the_inbox_says_so(
    notify: Notify, person: Owner
) -> None:
    msg = await review(person)
    (mail,) = await mail_for(notify, person.email)
    assert (await person.respond(msg["id"], {"selectedOption": "reject"})).status_code == 200
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.post(mail.links()[0])
    assert page.status_code == 409
    assert "Review closed" in page.text
    state = (await person.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]
    assert state["response"] == {"selectedOption": "reject"}


async def test_single_selection_gets_links_and_a_form_review_only_the_inbox(
    notify: Notify, person: Owner
) -> None:
    agent = await person.create_agent(name="picker")
    pick = await person.post_message(
        agent["id"],
        text="Which region?",
        review={
            "type": "selection",
            "payload": {
                "mode": "single",
                "items": [{"id": "eu", "label": "EU"}, {"id": "us", "label": "US"}],
            },
        },
    )
    (mail,) = await mail_for(notify, person.email)
    assert len(mail.links()) == 2
    async with httpx.AsyncClient(timeout=10) as browser:
        assert (await browser.post(mail.links()[1])).status_code == 200
    state = (await person.agent.get(f"/api/v1/reviews/{pick['id']}")).json()["review"]
    assert state["response"] == {"selectedIds": ["us"]}

    await person.post_message(
        agent["id"],
        text="Fill the form",
        review={"type": "form", "payload": {"fields": [{"name": "why", "label": "Why", "type": "text"}]}},
    )
    mails = await mail_for(notify, person.email, 2)
    assert mails[1].links() == []
    assert "Open in Sayso" in mails[1].part("plain")


async def test_turning_email_off_and_the_log_the_operator_page_shows(notify: Notify, person: Owner) -> None:
    msg = await review(person)
    await mail_for(notify, person.email)

    async def logged() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = (
            await person.human.get("/api/v1/notifications", params={"message": msg["id"]})
        ).json()["data"]
        return data if data and data[0]["state"] == "sent" else None

    (entry,) = await eventually(logged, 10, "the notification logged as sent")
    assert entry["kind"] == "email"
    assert entry["purpose"] == "review"
    assert entry["recipient"] == person.email
    assert entry["attempts"][0]["errorKind"] is None

    prefs = await person.human.put("/api/v1/users/me/notifications", json={"email": False})
    assert prefs.status_code == 200, prefs.text
    assert prefs.json()["email"] is False
    agent = await person.create_agent(name="quiet-bot")
    second = await person.post_message(agent["id"], text="Anything?", review=APPROVAL)

    async def planned() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = (
            await person.human.get("/api/v1/notifications", params={"message": second["id"]})
        ).json()["data"]
        return data or None

    # Nothing planned for a person who turned e-mail off and set no Slack webhook.
    with pytest.raises(AssertionError):
        await eventually(planned, 3, "no notification")
    assert len(notify.mailbox.to(person.email)) == 1
