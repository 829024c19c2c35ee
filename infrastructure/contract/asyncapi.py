"""The AsyncAPI 3.0 document of the public events, generated from the public models
(`python -m entrypoints.docs` writes docs/asyncapi.json; `--check` fails when it
is stale).

Only the public channels are described: billrun's own worker subscriptions are
an implementation detail (their durable names are in docs/subscribing.md so
nobody reuses them). Each message documents its NATS headers (the CloudEvents
attributes, with `ce-type` fixed per message) and its payload (the public model's
JSON Schema: decimals as strings with a pattern, additional properties allowed).
There is no correlation id: billrun sends none.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from infrastructure.contract import CE_SPECVERSION, CONTENT_TYPE, PUBLIC_FORMS
from infrastructure.messaging import subject_for
from infrastructure.topics import STORED_TOPICS

HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "NATS headers: CloudEvents 1.0 attributes (binary mode) and billrun's own.",
    "additionalProperties": True,
    "required": [
        "Nats-Msg-Id", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time",
        "ce-subject", "content-type", "Billrun-Notification-Id", "Billrun-Aggregate-Id",
        "Billrun-Aggregate-Version",
    ],
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]+(:replay:[A-Za-z0-9_-]+)?$",
            "description": "`<source>:<notification id>`, plus `:replay:<replay id>` on a "
            "replayed copy; the server drops a republish within its duplicate window.",
        },
        "ce-specversion": {"type": "string", "const": CE_SPECVERSION},
        "ce-id": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]+$",
            "description": "`<source>:<notification id>`: the same for a replayed copy, so "
            "deduplicate on it.",
        },
        "ce-source": {
            "type": "string",
            "pattern": r"^/billrun/[A-Za-z0-9][A-Za-z0-9._-]*$",
            "description": "`/billrun/<BILLRUN_SOURCE>`: the deployment.",
        },
        "ce-type": {
            "type": "string",
            "pattern": r"^billrun\.[a-z_]+\.[a-z_]+\.v[0-9]+$",
            "description": "The public event type and its version.",
        },
        "ce-time": {
            "type": "string",
            "format": "date-time",
            "description": "When the event happened (recorded), not when it was published.",
        },
        "ce-subject": {
            "type": "string",
            "description": "What the event is about: the payload field named in the message.",
        },
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "Billrun-Notification-Id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The event's position in billrun's log: only increases, may "
            "have holes (see `billrun history --all`).",
        },
        "Billrun-Aggregate-Id": {"type": "string", "format": "uuid"},
        "Billrun-Aggregate-Version": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Orders the events of one aggregate.",
        },
        "Billrun-Run-Id": {
            "type": "string",
            "description": "The bill run that caused the event (absent otherwise); equals "
            "the payload's `run_id`.",
        },
        "Billrun-Replay-Id": {
            "type": "string",
            "description": "Present on copies published by `billrun relay replay`.",
        },
    },
}  # fmt: skip


def asyncapi_document() -> dict[str, Any]:
    forms = sorted(PUBLIC_FORMS.values(), key=lambda form: form.ce_type)
    _, defs = models_json_schema(
        [(form.model, "serialization") for form in forms],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = {"CloudEventHeaders": HEADERS_SCHEMA, **defs.get("$defs", {})}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for form in forms:
        name = form.model.__name__
        address = subject_for(STORED_TOPICS[form.stored], "{prefix}")
        summary = (form.model.__doc__ or name).strip().splitlines()[0]
        messages[name] = {
            "name": form.ce_type,
            "title": form.ce_type,
            "summary": summary,
            "contentType": CONTENT_TYPE,
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventHeaders"},
                    {
                        "properties": {
                            "ce-type": {"const": form.ce_type},
                            "ce-subject": {"description": f"The payload's `{form.subject}`."},
                        }
                    },
                ]
            },
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        channels[form.stored] = {
            "address": address,
            "title": address,
            "description": summary,
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish{form.stored}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{form.stored}"},
            "messages": [{"$ref": f"#/channels/{form.stored}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "billrun public events",
            "version": "1",
            "description": "The events billrun publishes on NATS JetStream for other "
            "services: CloudEvents 1.0 in binary mode (attributes in `ce-*` headers, the "
            "payload is the event's data as JSON). Stream `<PREFIX>` (BILLRUN_NATS_PREFIX "
            "upper-cased, default BILLING), subjects `<prefix>.<aggregate>.<Event>`. "
            "Subscribers must ignore fields they do not know. See docs/subscribing.md.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "BILLRUN_NATS_URL of the deployment.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {
                "prefix": {
                    "default": "billing",
                    "description": "BILLRUN_NATS_PREFIX of the deployment.",
                }
            },
            "messages": messages,
            "schemas": schemas,
        },
    }
