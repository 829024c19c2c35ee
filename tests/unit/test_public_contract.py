"""The public event contract without servers: names derived from the prefix, the
deployment's source, and what the mapping keeps off the wire."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import orjson
import pytest

from domain.invoicing.invoice_numbers import format_document_number
from infrastructure.contract import PUBLIC_FORMS
from infrastructure.contract.base import document_number, plain
from infrastructure.messaging import StreamNames
from infrastructure.relay import Encoder
from infrastructure.settings import ConfigurationError, Settings, derived_source
from infrastructure.topics import STORED_TOPICS

DOCS = Path(__file__).parents[2] / "docs"


def settings(**env: str) -> Settings:
    return Settings.from_environment(
        {"BILLRUN_DATABASE_URL": "postgresql://u:p@db:5432/books", **env}
    )


def test_the_default_prefix_keeps_the_names_billrun_always_used() -> None:
    names = StreamNames.for_prefix("billing", "s")
    assert (names.stream, names.dead_letter_stream, names.dead_letter_prefix) == (
        "BILLING", "BILLING_DLQ", "billing-dlq",
    )  # fmt: skip
    assert names.durable_prefix == "billrun"


def test_another_prefix_derives_its_own_stream_dead_letters_and_durables() -> None:
    names = StreamNames.for_prefix("tenant-2", "s")
    assert (names.stream, names.dead_letter_stream, names.dead_letter_prefix) == (
        "TENANT_2", "TENANT_2_DLQ", "tenant-2-dlq",
    )  # fmt: skip
    assert names.durable_prefix == "billrun-tenant-2"


def test_the_source_is_derived_from_host_port_and_database_not_from_credentials() -> None:
    home = Path("/srv/billrun")
    a = derived_source("postgresql://alice:secret@db:5432/books", home)
    assert a == derived_source("postgresql://bob:other@db/books?sslmode=require", home)
    assert a != derived_source("postgresql://alice:secret@db:5432/books2", home)
    assert a.startswith("db-") and len(a) == 15
    assert settings().source == a
    assert settings(BILLRUN_SOURCE="eu-prod").source == "eu-prod"


@pytest.mark.parametrize("prefix", ["Billing", "a.b", "a>", "*", "-x", "x" * 33])
def test_a_prefix_that_is_not_one_subject_token_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="BILLRUN_NATS_PREFIX"):
        settings(BILLRUN_NATS_PREFIX=prefix)


def test_a_source_that_cannot_go_into_a_message_id_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="BILLRUN_SOURCE"):
        settings(BILLRUN_SOURCE="a b:c")


def encode(event: str, state: dict[str, object], nid: int = 7) -> tuple[dict[str, str], dict]:
    encoder = Encoder("billing", "test")
    row = (nid, str(uuid4()), 2, STORED_TOPICS[event], orjson.dumps(state))
    message = encoder.encode(row)
    assert message is not None
    return message.headers, json.loads(message.body)


TIME = "2026-02-01T10:00:00Z"


def test_auto_pay_never_publishes_the_gateway_token() -> None:
    token = "tok_live_4242424242424242"
    headers, body = encode("AutoPaySet", {"timestamp": TIME, "token": token})
    assert body["enabled"] is True and body["token_last4"] == "4242"
    assert token not in json.dumps(body) + json.dumps(headers)
    _, short = encode("AutoPaySet", {"timestamp": TIME, "token": "tok_12"})
    assert short["token_last4"] is None, "four of six characters would reveal most of it"


def test_rendered_and_delivered_carry_no_host_path_or_recipient() -> None:
    _, rendered = encode("InvoiceRendered", {
        "timestamp": TIME, "run_id": "r", "format": "pdf", "sha256": "ab" * 32,
        "location": "/srv/billrun/documents/ab.pdf", "size": 10,
    })  # fmt: skip
    _, delivered = encode("InvoiceDelivered", {
        "timestamp": TIME, "run_id": "r", "channel": "email", "recipient": "jane@example.com",
        "message_id": "<1@host>", "location": "/srv/billrun/outbox/1.eml",
    })  # fmt: skip
    text = json.dumps([rendered, delivered])
    assert "/srv" not in text and "jane@" not in text


def test_the_cloudevents_headers_name_the_event_its_deployment_and_when_it_happened() -> None:
    headers, body = encode("ExchangeRateSet", {
        "timestamp": TIME, "base": "EUR", "quote": "USD", "rate": "1.1E+0",
        "effective_date": "2026-02-01",
    }, nid=41)  # fmt: skip
    assert headers["ce-id"] == headers["Nats-Msg-Id"] == "test:41"
    assert (headers["ce-specversion"], headers["ce-source"]) == ("1.0", "/billrun/test")
    assert headers["ce-type"] == "billrun.exchange_rates.rate_set.v1"
    assert (headers["ce-time"], headers["ce-subject"]) == (TIME, "USD")
    assert body["rate"] == "1.1", "plain notation, never an exponent"
    assert "Billrun-Run-Id" not in headers


def test_events_without_a_public_form_are_not_published() -> None:
    encoder = Encoder("billing", "test")
    row = (1, str(uuid4()), 1, STORED_TOPICS["RunLeased"], b'{"timestamp":"x"}')
    assert encoder.encode(row) is None


def test_numbers_are_formatted_as_the_documents_print_them() -> None:
    for number, kind in ((1, "invoice"), (12345678, "credit_note")):
        assert document_number(number, kind) == format_document_number(number, kind)
    assert plain("1E+2") == "100" and plain("0.10") == "0.10" and plain(None) is None


def test_every_public_type_is_listed_in_the_subscribers_guide() -> None:
    guide = (DOCS / "subscribing.md").read_text()
    missing = [f.ce_type for f in PUBLIC_FORMS.values() if f"`{f.ce_type}`" not in guide]
    assert not missing
