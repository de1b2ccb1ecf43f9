"""Hostile input: values that are valid JSON but cannot be stored or rendered, header injection,
odd signatures and parallel password guessing. Every case is a 4xx naming what is wrong, nothing
is stored on refusal, and no request of another tenant is disturbed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sayso_api.jsonguard import HostileJsonError, check_value, plainly_safe
from tests.support.inprocess import InProcessApi
from tests.support.stack import Owner, RunningStack

HUGE = 2**64  # beyond BSON's 64-bit integers
DEEP: Any = "x"
for _ in range(200):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"n": HUGE}, "n"),
        ({"n": -(2**63) - 1}, "n"),
        ({"a": [1, {"b": HUGE}]}, "a[1].b"),
        ({"k\x00ey": 1}, "k\x00ey"),
        ({"\ud800": 1}, "\\ud800"),
        ({"s": "lone \udfff"}, "s"),
        ({"f": float("inf")}, "f"),
        ({"deep": DEEP}, "deep" + "[0]" * 63),
    ],
)
def test_checker_names_the_field(value: Any, field: str) -> None:
    with pytest.raises(HostileJsonError) as err:
        check_value(value)
    assert err.value.field == field


def test_checker_accepts_what_is_storable() -> None:
    check_value(
        {"n": 2**63 - 1, "m": -(2**63), "f": 1.5, "s": "emoji 🚀 ok", "l": [[[]]], "b": True, "z": None}
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": 9223372036854775808}',
        b'{"n": -9223372036854775809}',
        b'{"n": 1e400}',
        b'{"n": 1E4}',
        b'{"n": NaN}',
        b'{"n": -Infinity}',
        b'{"k\\u0000": 1}',
        b'{"s": "\\ud800"}',
        '{"s": "\ud800"}'.encode("utf-8", "surrogatepass"),
        "[1]".encode("utf-16"),
        b"[" * 64 + b"]" * 64,
    ],
)
def test_bodies_that_could_hide_a_hostile_value_are_parsed(raw: bytes) -> None:
    assert not plainly_safe(raw)


def test_an_ordinary_message_body_is_not_parsed_twice() -> None:
    body = {"channelId": "agt_1", "text": "Deploy v2.1 to production? 🚀", "metadata": {"n": 12, "f": 0.5},
            "review": {"type": "approval", "payload": {"options": [{"id": "approve", "label": "Approve"}]}}}  # fmt: skip
    assert plainly_safe(json.dumps(body, ensure_ascii=False).encode())


ANY_CHARACTER = st.characters(exclude_categories=[])  # lone surrogates and NUL included


@settings(max_examples=300, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_CHARACTER),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(ANY_CHARACTER, max_size=6), inner, max_size=4),
    max_leaves=30,
), ascii_only=st.booleans())  # fmt: skip
def test_a_body_judged_plainly_safe_holds_nothing_hostile(value: Any, ascii_only: bool) -> None:
    """The byte scan never waves through what parsing and walking would refuse."""
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if plainly_safe(raw):
        check_value(json.loads(raw))


def _raw(obj: str) -> bytes:
    return obj.encode("utf-8", "surrogatepass")


# (body template, the field the 422 must name). {agent} is replaced by a fresh channel id.
HOSTILE_BODIES = [
    ('{"channelId": "{agent}", "text": "x", "metadata": {"n": 18446744073709551616}}', "metadata.n"),
    ('{"channelId": "{agent}", "text": "x", "metadata": {"n": NaN}}', None),
    ('{"channelId": "{agent}", "text": "x", "metadata": {"n": 1e400}}', "metadata.n"),
    ('{"channelId": "{agent}", "text": "x", "metadata": {"a\\u0000b": 1}}', "metadata.a\x00b"),
    ('{"channelId": "{agent}", "text": "bad \\ud800 text"}', "text"),
    ('{"channelId": "{agent}", "text": "x", "review": {"type": "freeform", "payload": {"x": [1, 99999999999999999999]}}}', "review.payload.x[1]"),
    ('{"channelId": "{agent}", "text": "x", "review": {"type": "form", "payload": {"fields": [{"name": "n", "type": "number", "max": 1e999}]}}}', "review.payload.fields[0].max"),
    ('{"channelId": "{agent}", "text": "x", "review": {"type": "approval", "payload": {}, "expiresInSeconds": 100000000000000000000}}', "review.expiresInSeconds"),
    ('{"channelId": "{agent}", "text": "x", "metadata": ' + "[" * 300 + "]" * 300 + "}", None),
]  # fmt: skip


@pytest.mark.parametrize(("template", "field"), HOSTILE_BODIES)
async def test_hostile_message_bodies_are_422(api_owner: Owner, template: str, field: str | None) -> None:
    agent = await api_owner.create_agent()
    body = _raw(template.replace("{agent}", agent["id"]))
    resp = await api_owner.agent.post(
        "/api/v1/messages", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] in ("validation_error", "invalid_json")
    if field is not None:
        assert error["field"] == field
    listed = await api_owner.agent.get("/api/v1/messages", params={"channel": agent["id"]})
    assert listed.json()["data"] == []


async def test_hostile_answers_and_agent_bodies(api_owner: Owner) -> None:
    agent = await api_owner.create_agent()
    msg = await api_owner.post_message(agent["id"], review={"type": "freeform", "payload": {}})
    headers = {"content-type": "application/json"}
    answer = await api_owner.human.post(
        f"/api/v1/reviews/{msg['id']}/respond", content=b'{"response": {"big": 1e99999}}', headers=headers
    )
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, "response.big")
    assert (await api_owner.agent.get(f"/api/v1/reviews/{msg['id']}")).json()["review"]["status"] == "pending"
    user = await api_owner.human.post(
        "/api/v1/messages/user",
        content=_raw(f'{{"channelId": "{agent["id"]}", "text": "\\udc00"}}'),
        headers=headers,
    )
    assert user.status_code == 422
    named = await api_owner.agent.post("/api/v1/agents", content=_raw('{"name": "\\ud83d"}'), headers=headers)
    assert (named.status_code, named.json()["error"]["field"]) == (422, "name")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Tenant": "a\x01b"},  # a control character aiohttp refuses at send time
        {"X-Tenant": "tab\tinside is fine but not\x7f"},
        {"X-Tenant": " padded"},
        {"Transfer-Encoding": "chunked"},
        {"connection": "close"},
        {"Expect": "100-continue"},
        {"TE": "trailers"},
        {"Upgrade": "h2c"},
        {"Content-Length": "5"},
        {"webhook-signature": "v1,forged"},
        {"Bad(Name)": "v"},
        {"Ünïcode": "v"},
        {"X-Emoji": "🚀"},
    ],
)
async def test_webhook_headers_must_be_safe(api_owner: Owner, headers: dict[str, str]) -> None:
    created = await api_owner.agent.post("/api/v1/agents", json={"name": "h", "webhookHeaders": headers})
    assert created.status_code == 422, created.text
    assert created.json()["error"]["field"] == "webhookHeaders"
    agent = await api_owner.create_agent()
    patched = await api_owner.agent.patch(f"/api/v1/agents/{agent['id']}", json={"webhookHeaders": headers})
    assert patched.status_code == 422
    hooked = await api_owner.agent.post(
        "/api/v1/agents/setWebhook",
        json={"channelId": agent["id"], "url": "https://x.example/", "headers": headers},
    )
    assert (hooked.status_code, hooked.json()["error"]["field"]) == (422, "headers")


async def test_trigger_with_a_non_ascii_signature_is_401(api_owner: Owner) -> None:
    agent = await api_owner.create_agent()
    made = await api_owner.agent.post(
        f"/api/v1/agents/{agent['id']}/triggers", json={"name": "t", "mapping": {"text": "/summary"}}
    )
    assert made.status_code == 201, made.text
    trig = made.json()
    resp = await api_owner.agent.post(
        f"/api/triggers/{trig['id']}",
        content=b'{"summary": "x"}',
        headers=[
            (b"content-type", b"application/json"),
            (b"webhook-id", b"m1"),
            (b"webhook-timestamp", str(int(time.time())).encode()),
            (b"webhook-signature", "v1,é".encode()),
        ],
    )
    assert resp.status_code == 401, resp.text


async def test_parallel_wrong_passwords_hit_the_throttle(stack: RunningStack, owner: Owner) -> None:
    """The limit (5 failures per e-mail on the test stack) holds for 40 guesses at once."""
    async with stack.client() as anon:
        tries = await asyncio.gather(
            *(
                anon.post("/api/v1/auth/login", json={"email": owner.email, "password": f"wrong-{i}"})
                for i in range(40)
            )
        )
    codes = sorted(r.status_code for r in tries)
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 35, codes
    assert all(r.headers.get("retry-after") for r in tries if r.status_code == 429)


# ── property: hostile JSON anywhere in any body ──────────────────────────────────────────────

_hostile_leaf = st.one_of(
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(max_value=-(2**63) - 1, min_value=-(2**80)),
    st.sampled_from(["\ud800", "a\udfffb", "\udbff"]),
    st.just(float("inf")),
)
_plain_leaf = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))


_bad_key = st.dictionaries(
    st.sampled_from(["a\x00", "\ud800k", "x\x00y"]), _plain_leaf, min_size=1, max_size=1
)


@st.composite
def _hostile(draw: st.DrawFn) -> Any:
    """One hostile leaf (or key), wrapped in up to four levels of lists and objects whose other
    members are harmless."""
    value: Any = draw(st.one_of(_hostile_leaf, _bad_key))
    for wrap in draw(st.lists(st.sampled_from(["list", "dict"]), max_size=4)):
        siblings = draw(st.lists(_plain_leaf, max_size=2))
        if wrap == "list":
            spot = draw(st.integers(0, len(siblings)))
            value = [*siblings[:spot], value, *siblings[spot:]]
        else:
            key = draw(st.text(min_size=1, max_size=4).filter(lambda k: k.isprintable()))
            value = {**{f"s{i}": v for i, v in enumerate(siblings)}, key: value}
    return value


HOSTILE = _hostile()


@dataclass
class Tenant:
    agent: httpx.AsyncClient
    human: httpx.AsyncClient
    channel: str
    review: str


@pytest.fixture(scope="module")
async def tenant(api: InProcessApi) -> AsyncIterator[Tenant]:
    owner = await api.new_owner()
    channel = (await owner.create_agent(name="prop"))["id"]
    review = await owner.post_message(channel, review={"type": "freeform", "payload": {}})
    yield Tenant(owner.agent, owner.human, channel, review["id"])
    await owner.aclose()


def _bodies(channel: str, review: str, value: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(who, method, path, body) for every endpoint with a body, each carrying ``value``."""
    return [
        ("agent", "POST", "/api/v1/messages", {"channelId": channel, "text": "p", "metadata": {"v": value}}),
        ("agent", "POST", "/api/v1/messages", {"channelId": channel, "review": {"type": "freeform", "payload": {"v": value}}}),
        ("agent", "POST", "/api/v1/messages", {"channelId": channel, "text": "p", "v": value}),
        ("human", "POST", f"/api/v1/reviews/{review}/respond", {"response": {"v": value}}),
        ("human", "POST", "/api/v1/messages/user", {"channelId": channel, "text": "p", "metadata": {"v": value}}),
        ("agent", "POST", "/api/v1/agents", {"name": "p", "description": value}),
        ("agent", "PATCH", f"/api/v1/agents/{channel}", {"description": value}),
        ("agent", "POST", "/api/v1/status/ping", {"agentId": channel, "status": "busy", "message": value}),
        ("agent", "POST", "/api/v1/agents/setWebhook", {"channelId": channel, "url": "https://x.example/", "v": value}),
        ("agent", "PATCH", "/api/v1/messages/streams/none", {"channelId": channel, "text": "t", "v": value}),
    ]  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=HOSTILE)
async def test_no_hostile_json_reaches_a_5xx_or_the_database(tenant: Tenant, value: Any) -> None:
    listing: dict[str, str | int] = {"channel": tenant.channel, "limit": 100}
    before = (await tenant.agent.get("/api/v1/messages", params=listing)).json()["data"]
    for who, method, path, body in _bodies(tenant.channel, tenant.review, value):
        raw = json.dumps(body).encode("utf-8", "surrogatepass")
        client = tenant.agent if who == "agent" else tenant.human
        resp = await client.request(method, path, content=raw, headers={"content-type": "application/json"})
        assert resp.status_code < 500, (path, resp.text)
        assert resp.status_code >= 400, (path, resp.text)  # every body here carries a hostile value
        assert set(resp.json()["error"]) >= {"code", "message"}
    after = (await tenant.agent.get("/api/v1/messages", params=listing)).json()["data"]
    assert after == before
    assert (await tenant.human.get(f"/api/v1/reviews/{tenant.review}")).json()["review"][
        "status"
    ] == "pending"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_oversize_chunked_body_is_413(api_owner: Owner, content_type: str) -> None:
    async def chunks() -> Any:
        for _ in range(30):
            yield b" " * 10_000  # 300 KB without a Content-Length

    resp = await api_owner.agent.post(
        "/api/v1/messages", content=chunks(), headers={"content-type": content_type}
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "payload_too_large"
