"""The AsyncAPI 3.0 document of Sayso's events: the Kafka topics (who sends, which consumer group
receives) and what the realtime gateway sends to Socket.IO and SSE clients.

    uv run --frozen python -m sayso_devstack.asyncapi          # rewrite the committed document
    uv run --frozen python -m sayso_devstack.asyncapi --check  # exit 1 if it is out of date

The committed file (``sayso_common/asyncapi.json``) is what the API serves at ``/asyncapi.json``;
``tests/test_asyncapi.py`` fails when it differs from what this module generates, so an event
model that changes without the document fails ``make test``.

Made from the code, not written by hand:
- the payload schemas, from the event models in ``sayso_common.events`` (the JSON the outbox relay
  publishes, ``event_to_json``) and the views the realtime gateway sends (``sayso_realtime.payloads``
  builds its JSON from the same models: the message as the API returns it, plus ``eventId``);
- the consumer groups' receive operations, from FastStream's own AsyncAPI 3.0 output for the
  dispatcher's and the notifier's real subscribers (``GroupConsumer.build`` with their groups).

Declared here, because FastStream cannot see them: its subscribers read the records' raw bytes
(``sayso_service.consumers.raw_values``), so it knows no payload type; the producers are the
outbox relays (plain aiokafka, in the API and the dispatcher); the realtime feed reads every
topic without a consumer group (plain aiokafka); Socket.IO and SSE are not Kafka.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

from faststream.specification import AsyncAPI
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema
from sayso_service.consumers import Group, GroupConsumer

import sayso_common
from sayso_common import events, topics
from sayso_common.settings import ServiceSettings
from sayso_common.views import MessageView, VoteView
from sayso_dispatcher.consumer import group as dispatcher_group
from sayso_dispatcher.settings import DispatcherSettings
from sayso_notifier.consumer import group as notifier_group
from sayso_notifier.settings import NotifierSettings

DOCUMENT = Path(sayso_common.__file__).parent / "asyncapi.json"
TITLE = "Sayso events"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

# Who publishes each topic (all through an outbox relay: the event is written with the change).
PRODUCERS: dict[str, str] = {
    topics.MESSAGE_CREATED: "api (outbox relay): a message was posted",
    topics.MESSAGE_UPDATED: "api (outbox relay): a streamed message's text or steps changed",
    topics.REVIEW_RESPONDED: "api (outbox relay): a review was answered, by a human or a policy",
    topics.REVIEW_EXPIRED: "api (outbox relay), written by the expirer when a review's deadline passed",
    topics.REVIEW_VOTED: "api (outbox relay): a reviewer voted on a quorum review",
    topics.DELIVERY_STATUS: "dispatcher (outbox relay): a webhook attempt's outcome; api: a manual re-send",
    topics.AGENT_STATUS: "api (outbox relay): an agent reported its status",
    topics.APPROVAL_REMEMBERED: "api (outbox relay): a person's approving answer was remembered for the same action",
    topics.APPROVAL_REVOKED: "api (outbox relay): a remembered approval was revoked",
    topics.ENDPOINT_DISABLED: "dispatcher (outbox relay): a webhook target was disabled (410, or failures)",
    topics.RETRIES_EXHAUSTED: "dispatcher (outbox relay): deliveries to a webhook target fail for good",
    topics.CIRCUIT_OPEN: "dispatcher (outbox relay): a webhook target's circuit stayed open too long",
}

# What the realtime gateway calls a delivery status's event_id (sayso_realtime.payloads).
DELIVERED_EVENT_ID = "deliveredEventId"


def _event_models() -> list[type[events._Event]]:
    union = typing.get_args(events.Event)[0]
    return list(typing.get_args(union))


def _type_of(model: type[events._Event]) -> str:
    literal: str = model.model_fields["type"].default
    return literal


def _summary(model: type[BaseModel]) -> str | None:
    doc = model.__doc__
    own = doc and doc is not BaseModel.__doc__ and model.__dict__.get("__doc__")
    return inspect.cleandoc(doc).replace("\n", " ") if own and doc else None


def _camel_object(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its property names in camelCase (how the gateway sends status events)."""
    return {
        **schema,
        "properties": {to_camel(k): v for k, v in schema["properties"].items()},
        "required": [to_camel(k) for k in schema.get("required", [])],
    }


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*_event_models(), MessageView, VoteView]
    _, defs = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    schemas: dict[str, Any] = dict(sorted(defs["$defs"].items()))
    event_id = {"type": "string", "description": "The event's id: the resume cursor (Last-Event-ID)."}
    channel_id = {"type": "string", "description": "The channel (agent) the event belongs to."}
    schemas["RealtimeMessage"] = {
        "description": "The message as the API returns it, plus the event's id.",
        "allOf": [
            {"$ref": REF.format(model="MessageView")},
            {"type": "object", "properties": {"eventId": event_id}, "required": ["eventId"]},
        ],
    }
    schemas["RealtimeVote"] = {
        "description": "The message with every vote so far, the vote this event is about, the event's id.",
        "allOf": [
            {"$ref": REF.format(model="MessageView")},
            {
                "type": "object",
                "properties": {"vote": {"$ref": REF.format(model="VoteView")}, "eventId": event_id},
                "required": ["vote", "eventId"],
            },
        ],
    }
    for name in ("DeliveryStatusData", "AgentStatusData", "RememberedData", "IncidentData"):
        data = _camel_object(schemas[name])
        properties, required = data["properties"], data["required"]
        if name == "DeliveryStatusData":
            # The delivered event's id gets its own name on the wire: eventId is this event's own.
            properties = {(DELIVERED_EVENT_ID if k == "eventId" else k): v for k, v in properties.items()}
            required = [DELIVERED_EVENT_ID if k == "eventId" else k for k in required]
        schemas[f"Realtime{name.removesuffix('Data')}"] = {
            **data,
            "title": f"Realtime{name.removesuffix('Data')}",
            "properties": {**properties, "channelId": channel_id, "eventId": event_id},
            # dict.fromkeys: a remembered approval's data has its own channelId.
            "required": list(dict.fromkeys([*required, "channelId", "eventId"])),
        }
    schemas["CredentialsRevoked"] = {
        "type": "object",
        "description": "The last frame before the gateway closes a stream whose credentials were revoked.",
        "properties": {
            "code": {"type": "string", "const": "credentials_revoked"},
            "message": {"type": "string"},
        },
        "required": ["code", "message"],
    }
    return schemas


def _realtime_schema(model: type[events._Event]) -> str:
    if model is events.ReviewVoted:
        return "RealtimeVote"
    if model is events.DeliveryStatusChanged:
        return "RealtimeDeliveryStatus"
    if model is events.AgentStatusChanged:
        return "RealtimeAgentStatus"
    if model is events.ApprovalRemembered or model is events.ApprovalRevoked:
        return "RealtimeRemembered"
    if model in events.OPERATOR_EVENTS:
        return "RealtimeIncident"
    return "RealtimeMessage"


def _kafka_messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for model in _event_models():
        kind = _type_of(model)
        messages[kind] = {
            "name": kind,
            "title": model.__name__,
            **({"summary": s} if (s := _summary(model)) else {}),
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=model.__name__)},
            "headers": {
                "type": "object",
                "properties": {
                    "traceparent": {
                        "type": "string",
                        "description": "W3C Trace Context of the request that caused the event.",
                    }
                },
            },
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": "The channel id: one channel's events stay in order.",
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
    return messages


def _realtime_messages() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for model in _event_models():
        wire = events.wire_name(_type_of(model))
        messages[f"realtime.{_type_of(model)}"] = {
            "name": wire,
            "title": wire,
            "summary": f"Sent for each {_type_of(model)} event the client may see.",
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=_realtime_schema(model))},
        }
    return messages


def _revoked(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": "The connection's key or session was revoked; the gateway closes it after this.",
        "contentType": "application/json",
        "payload": {"$ref": REF.format(model="CredentialsRevoked")},
    }


def _quiet_metrics() -> tuple[Counter, Gauge]:
    registry = CollectorRegistry()  # never exported: GroupConsumer.build only needs the objects
    return (
        Counter("spec_consumed", "unused", ["type"], registry=registry),
        Gauge("spec_lag", "unused", ["topic"], registry=registry),
    )


async def _noop(batch: list[events.Event]) -> None:
    return None


def _faststream_receives(settings: ServiceSettings, group: Group) -> list[str]:
    """The topics FastStream documents for the group's real subscriber (AsyncAPI 3.0 operations)."""
    consumed, lag = _quiet_metrics()
    consumer = GroupConsumer.build(settings, group, "asyncapi", _noop, consumed, lag)
    spec = AsyncAPI(consumer.broker, title=group.name, schema_version="3.0.0").to_specification()
    generated: dict[str, Any] = spec.to_jsonable()
    assert generated["asyncapi"] == "3.0.0", generated["asyncapi"]
    channels = generated["channels"]
    found = []
    for operation in generated["operations"].values():
        assert operation["action"] == "receive"
        channel = channels[operation["channel"]["$ref"].rsplit("/", 1)[-1]]
        found.append(channel["address"].removeprefix(settings.topic_prefix))
    return found


def _groups() -> list[tuple[Group, ServiceSettings, str]]:
    """(group, its settings, what it does) for each consumer group, from the services' own
    definitions. Settings are their defaults only (model_construct reads no environment): the
    document must not change with the machine that generates it."""
    dispatcher = DispatcherSettings.model_construct()
    notifier = NotifierSettings.model_construct()
    return [
        (
            dispatcher_group(dispatcher),
            dispatcher,
            "Turns events into webhook deliveries (one per event and target URL) and sends them.",
        ),
        (
            notifier_group(notifier),
            notifier,
            "Tells humans about reviews (e-mail, Slack, reminders) and cancels what an answer made moot.",
        ),
    ]


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for kind in topics.ALL_EVENT_TYPES:
        channels[kind] = {
            "address": topics.topic_for(kind),
            "title": kind,
            "description": "A Kafka topic; its name is the event type, after SAYSO_TOPIC_PREFIX if set.",
            "servers": [{"$ref": "#/servers/kafka"}],
            "messages": {kind: {"$ref": f"#/components/messages/{kind}"}},
            "bindings": {"kafka": {"topic": topics.topic_for(kind), "bindingVersion": "0.5.0"}},
        }
        operations[f"publish.{kind}"] = {
            "action": "send",
            "title": f"Publish {kind}",
            "summary": PRODUCERS[kind],
            "channel": {"$ref": f"#/channels/{kind}"},
            "messages": [{"$ref": f"#/channels/{kind}/messages/{kind}"}],
        }
    for group, settings, purpose in _groups():
        for kind in _faststream_receives(settings, group):
            operations[f"{group.name}.receive.{kind}"] = {
                "action": "receive",
                "title": f"{group.name} receives {kind}",
                "summary": purpose,
                "description": f"Consumer group `{group.group_id}` (SAYSO_{group.name.upper()}_GROUP_ID); "
                "offsets are committed after the handler has written its work (at least once).",
                "channel": {"$ref": f"#/channels/{kind}"},
                "messages": [{"$ref": f"#/channels/{kind}/messages/{kind}"}],
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [group.group_id]},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
    for kind in topics.ALL_EVENT_TYPES:
        operations[f"realtime.receive.{kind}"] = {
            "action": "receive",
            "title": f"realtime receives {kind}",
            "summary": "Every realtime replica reads every partition (no consumer group) and fans the "
            "event out to long-poll waiters, Socket.IO and SSE clients.",
            "channel": {"$ref": f"#/channels/{kind}"},
            "messages": [{"$ref": f"#/channels/{kind}/messages/{kind}"}],
        }

    realtime = _realtime_messages()
    # The last frame of a revoked connection has a name of its own on each transport.
    closing = {
        "socketio": {"socketio.auth.revoked": _revoked("auth:revoked")},
        "sse": {"sse.error": _revoked("error")},
    }
    refs = {
        transport: {k: {"$ref": f"#/components/messages/{k}"} for k in [*realtime, *closing[transport]]}
        for transport in ("socketio", "sse")
    }
    channels["socketio"] = {
        "address": "/ws",
        "title": "Socket.IO namespace /ws",
        "description": "Socket.IO (path /socket.io/, namespace /ws). Authenticate in the handshake's "
        "`auth` with `token` (a JWT or an API key), `apiKey` or `ticket` (a stream ticket from "
        "POST /api/v1/events/tickets: single use, opened within 60 s, narrows the socket to its channels; "
        "also as the `ticket` query parameter); `channels` narrows it to some channels; "
        "pass `lastEventId` to receive what was missed. "
        "The event name is the event type with a colon (`review:responded`).",
        "servers": [{"$ref": "#/servers/realtime"}],
        "messages": refs["socketio"],
    }
    channels["sse"] = {
        "address": "/api/v1/events",
        "title": "Server-sent events",
        "description": "GET with an API key, a session or a scoped token in a header, or `?ticket=` (a stream "
        "ticket from POST /api/v1/events/tickets, what a browser's EventSource can send: single use, "
        "opened within 60 s; resume with `?lastEventId=` and a fresh ticket) "
        "(`Accept: text/event-stream`). Each frame has "
        "`id:` (the event id: send it back as Last-Event-ID), `event:` (the name below; `error` for "
        "revoked credentials) and `data:` (the JSON payload).",
        "servers": [{"$ref": "#/servers/realtime"}],
        "messages": refs["sse"],
    }
    for transport in ("socketio", "sse"):
        operations[f"{transport}.send"] = {
            "action": "send",
            "title": f"realtime sends to {transport} clients",
            "summary": "The events of the channels the client may see (its own, and those shared with it).",
            "channel": {"$ref": f"#/channels/{transport}"},
            "messages": [{"$ref": f"#/channels/{transport}/messages/{k}"} for k in refs[transport]],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Events of Sayso, human sign-off for AI agents: the Kafka topics between its "
            "services and the live events its realtime gateway sends to dashboards. Generated by "
            "`python -m sayso_devstack.asyncapi` from the event models.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The broker (SAYSO_KAFKA_BOOTSTRAP).",
            },
            "realtime": {
                "host": "localhost:8000",
                "protocol": "http",
                "description": "The edge: /socket.io/* and /api/v1/events reach the realtime gateway.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _schemas(),
            "messages": {**_kafka_messages(), **realtime, **closing["socketio"], **closing["sse"]},
        },
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed document is stale")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        if DOCUMENT.read_text() != text:
            print(f"{DOCUMENT} is out of date: run python -m sayso_devstack.asyncapi", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
