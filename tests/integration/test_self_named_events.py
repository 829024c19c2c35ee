"""Today's code stores, in every event whose public form needs them, the natural
ids that event used to get from its aggregate's opening events (class version 2:
an invoice event's account, document type and number, a run event's run id, a
charge's or contract's account and currency...).

The committed old log (tests/golden, every event at version 1) is recorded again
as today's aggregates record it: each version 2 event with the fields its
aggregate fills (`DomainEvent.from_aggregate`), taken from the aggregate just
before it. That log loads, and the relay publishes exactly the messages the old
log gives (the golden outputs), without looking any opening event up, even when
it starts mid-log. The old log itself, read by today's code, is
tests/integration/test_event_log_fixture.py."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from application.shared.app import Billing
from application.shared.history import History
from domain.shared.model import Aggregate, DomainEvent
from infrastructure.contract import NEEDS_FACTS, OPENERS, SELF_CONTAINED_FROM_V2
from infrastructure.persistence import PydanticMapper
from infrastructure.relay import Encoder, NotificationLog
from infrastructure.relay.log import RelayRow
from infrastructure.topics import STORED_TOPICS
from tests.golden.event_log import load_event_log
from tests.integration.helpers import EventLog
from tests.integration.test_event_log_fixture import AGGREGATE_OF_MODULE, GOLDEN_OUTPUTS

Message = dict[str, Any]


def record_as_today(billing: Billing, database_url: str) -> Counter[str]:
    """Rewrite the loaded old log's states as today's aggregates would have stored
    them (a test's own database: billrun never rewrites a stored event). Returns
    how many events of each type gained their fields."""
    mapper: PydanticMapper = billing.mapper  # type: ignore[assignment]
    aggregates: dict[UUID, Aggregate] = {}
    rerecorded: Counter[str] = Counter()
    with EventLog(database_url) as log:
        rows = log.conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM billing_events ORDER BY notification_id"
        ).fetchall()
        for row in rows:
            stored = StoredEvent(
                row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])
            )
            event: DomainEvent = mapper.to_domain_event(stored)  # type: ignore[assignment]
            before = aggregates.get(row["originator_id"])
            fields = type(event).from_aggregate
            if fields:
                assert before is not None, f"{row['topic']} opens no aggregate"
                assert all(getattr(event, name) is None for name in fields), "upcast with None"
                event = event.model_copy(update={n: getattr(before, n) for n in fields})
                log.conn.execute(
                    "UPDATE billing_events SET state = %s WHERE notification_id = %s",
                    (mapper.to_stored_event(event).state, row["notification_id"]),  # type: ignore[arg-type]
                )
                rerecorded[type(event).__name__] += 1
            kind = AGGREGATE_OF_MODULE[str(row["topic"]).split(":")[0]]
            aggregates[row["originator_id"]] = kind.project(before, [event])  # type: ignore[assignment]
        log.conn.commit()
    return rerecorded


@pytest.fixture
def todays_log(billing: Billing, database_url: str) -> tuple[Billing, Counter[str]]:
    load_event_log(database_url)
    return billing, record_as_today(billing, database_url)


def encoded(billing: Billing, start: int) -> tuple[list[Message], list[list[str]]]:
    """The relay's messages from the `start`th row on, and the opening-event lookups
    it made (one list of aggregate ids per lookup)."""
    log = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    topics = sorted(STORED_TOPICS[name] for name in OPENERS)
    looked_up: list[list[str]] = []

    def lookup(ids: list[str]) -> list[tuple[int, str, str, bytes]]:
        looked_up.append(ids)
        return log.openings(ids, topics)

    rows: list[RelayRow] = log.page(1, log.head(), 10_000)[start:]
    encoder = Encoder("billing", "golden", lookup)
    encoder.prepare(rows)
    messages = [
        {"subject": m.subject, "headers": m.headers, "body": m.body}
        for m in (encoder.encode(row) for row in rows)
        if m is not None
    ]
    return messages, looked_up


def golden_relay() -> list[Message]:
    return list(json.loads(Path(GOLDEN_OUTPUTS).read_text())["relay"])


def same_as_golden(messages: list[Message], golden: list[Message]) -> None:
    assert len(messages) == len(golden)
    for message, expected in zip(messages, golden, strict=True):
        assert message["subject"] == expected["subject"]
        assert message["headers"] == expected["headers"], message["headers"]
        assert hashlib.sha256(message["body"]).hexdigest() == expected["body_sha256"], (
            message["headers"]["ce-type"],
            json.loads(message["body"]),
        )


def test_every_public_event_that_needed_facts_is_stored_with_its_names_today(
    todays_log: tuple[Billing, Counter[str]], database_url: str
) -> None:
    _, rerecorded = todays_log
    with EventLog(database_url) as log:
        stored = {
            str(row["topic"]).rpartition(":")[2]
            for row in log.conn.execute("SELECT DISTINCT topic FROM billing_events").fetchall()
        }
    assert (NEEDS_FACTS & stored) - set(rerecorded) == set()
    assert set(rerecorded) <= SELF_CONTAINED_FROM_V2
    assert NEEDS_FACTS <= SELF_CONTAINED_FROM_V2
    # The old log has every event that gained its names after the receivables'.
    assert {
        "InvoiceClosed", "InvoiceReleased", "InvoiceRendered", "InvoiceDelivered",
        "InvoiceApproved", "InvoiceQuarantined", "InvoiceReleasedFromQuarantine",
        "InvoiceRejected", "InvoiceCancelled", "InvoiceCredited", "RunStarted",
        "RunCompleted", "RunFailed", "RunCancelled", "RunValidated", "RunFinalized",
        "ChargeAdded", "ContractAgreed",
    } <= set(rerecorded)  # fmt: skip


def test_a_log_written_by_todays_code_loads(
    todays_log: tuple[Billing, Counter[str]], database_url: str
) -> None:
    billing, _ = todays_log
    ids: dict[type[Aggregate], dict[UUID, int]] = {}
    with EventLog(database_url) as log:
        for row in log.conn.execute(
            "SELECT originator_id, originator_version, topic FROM billing_events"
        ).fetchall():
            kind = AGGREGATE_OF_MODULE[str(row["topic"]).split(":")[0]]
            versions = ids.setdefault(kind, {})
            versions[row["originator_id"]] = max(
                versions.get(row["originator_id"], 0), int(row["originator_version"])
            )
    for kind, versions in ids.items():
        loaded = billing.load_many(kind, list(versions))
        assert {i: a.version for i, a in loaded.items()} == versions


def test_the_relay_publishes_the_same_messages_and_looks_nothing_up(
    todays_log: tuple[Billing, Counter[str]],
) -> None:
    billing, _ = todays_log
    messages, looked_up = encoded(billing, 0)
    same_as_golden(messages, golden_relay())
    assert looked_up == []


def test_a_relay_starting_mid_log_needs_no_opening_events(
    todays_log: tuple[Billing, Counter[str]],
) -> None:
    """The old log mid-log needs the opening events of what it publishes (see
    test_event_log_fixture); the same log recorded today needs none."""
    billing, _ = todays_log
    log = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    half = len(log.page(1, log.head(), 10_000)) // 2
    messages, looked_up = encoded(billing, half)
    assert looked_up == []
    golden = golden_relay()
    same_as_golden(messages, golden[len(golden) - len(messages) :])


def test_history_shows_the_names_and_hides_the_class_version(
    todays_log: tuple[Billing, Counter[str]],
) -> None:
    billing, _ = todays_log
    entries = list(History(billing).of_log())
    assert all("class_version" not in entry.payload for entry in entries)
    rendered = [e for e in entries if e.event == "InvoiceRendered"]
    assert rendered and all(e.payload["account_id"] and e.payload["number"] for e in rendered)
    started = [e for e in entries if e.event == "RunStarted"]
    assert started and all(e.payload["run_id"] for e in started)
