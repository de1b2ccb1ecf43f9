"""The pages an e-mail's answer link opens: a confirmation with one button (its POST is what
answers), then the result. Plain HTML built from escaped text, styled by the inbox's own
stylesheet, under the inbox's Content-Security-Policy: no script at all."""

from __future__ import annotations

import html

from sayso_api.answers import Found

HEADERS = {
    # Nothing on these pages may be cached or indexed: the URL is a credential until it is used.
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


def _page(title: str, *parts: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · Sayso</title>"
        '<link rel="stylesheet" href="/static/app.css"></head>\n'
        '<body class="page"><main class="login-page" id="main"><section class="login card answer-page">\n'
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</section></main></body></html>\n"
    )


def _review_text(found: Found) -> str:
    text = found.message.get("text", "") if found.message is not None else ""
    return f'<blockquote class="answer-text">{html.escape(text)}</blockquote>' if text else ""


def confirm(found: Found, token: str) -> str:
    """The GET: what the review asks, what the link would answer, and one button."""
    label = html.escape(found.label)
    action = f"/a/{html.escape(token, quote=True)}"
    return _page(
        "Confirm your answer",
        _review_text(found),
        f"<p>Your answer: <strong data-answer>{label}</strong></p>",
        f'<form method="post" action="{action}">'
        f'<button type="submit" class="btn btn-primary btn-wide">Confirm: {label}</button></form>',
        '<p class="hint">Nothing is recorded until you press the button.</p>',
    )


def result(found: Found) -> str:
    """After the POST, or a GET of a link that cannot be used (any more)."""
    if found.status == "answered":
        pending = (
            found.view is not None and found.view.review is not None and found.view.review.status == "pending"
        )
        note = (
            "<p>Your vote is recorded; the review waits for the other reviewers.</p>"
            if pending
            else "<p>Your answer is recorded. You can close this page.</p>"
        )
        return _page(
            "Answer recorded",
            _review_text(found),
            f"<p>You chose <strong>{html.escape(found.label)}</strong>.</p>",
            note,
        )
    titles = {"used": "Link already used", "closed": "Review closed", "revoked": "Link no longer valid"}
    title = titles.get(found.status, "Link not valid")
    return _page(title, f"<p data-reason>{html.escape(found.reason)}.</p>")
