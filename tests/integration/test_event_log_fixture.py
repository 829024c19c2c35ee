"""Today's code keeps understanding every event billrun ever wrote: the log
committed in tests/golden (written at 43dce88, every event type) loads into a
fresh database, and every aggregate, read model, the seal, the relay's
encoding and history read it."""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from application.shared.app import Billing
from application.shared.history import History, HistoryEntry
from domain.billing.account import Account
from domain.billing.exchange_rates import ExchangeRateBook
from domain.catalogue import event_catalogue
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import InvoiceNumberSequence
from domain.receivables.receivables import Receivables
from domain.runs.bill_run import BillRun
from domain.runs.schedule import Schedule
from domain.shared.model import Aggregate
from infrastructure.contract import OPENERS, PUBLIC_FORMS
from infrastructure.messaging import subject_for
from infrastructure.relay import Encoder, NotificationLog
from infrastructure.topics import STORED_TOPICS, topic_of
from projections.audit_seal import verify
from projections.catalog import READ_MODELS, ReadSide
from tests.golden.event_log import load_event_log
from tests.integration.helpers import EventLog

GOLDEN_OUTPUTS = Path(__file__).parents[1] / "golden" / "event_log_43dce88.outputs.json"
"""What the code of 6d73917 (before the bounded-context move) made of the old log:
each read model's checksum, each relay message (subject, headers, body digest) and
each history line. Rewrite it only for a deliberate change of one of those outputs:
`BILLRUN_GOLDEN_WRITE=1 pytest tests/integration/test_event_log_fixture.py`."""

GOLDEN_TOPICS = json.loads((Path(__file__).parents[1] / "golden" / "event_topics.json").read_text())
"""The event types of 43dce88, when the fixture was written: newer ones are not in it."""

AGGREGATE_OF_MODULE: dict[str, type[Aggregate]] = {
    "domain.account": Account,
    "domain.bill_group": BillGroup,
    "domain.bill_run": BillRun,
    "domain.exchange_rates": ExchangeRateBook,
    "domain.invoice": Invoice,
    "domain.invoice_numbers": InvoiceNumberSequence,
    "domain.receivables": Receivables,
    "domain.schedule": Schedule,
}


@pytest.fixture
def old_log(billing: Billing, database_url: str) -> Billing:
    load_event_log(database_url)
    return billing


@pytest.fixture
def read_side(old_log: Billing, es_env: dict[str, str]) -> Iterator[ReadSide]:
    opened = ReadSide(old_log, es_env)
    yield opened
    opened.close()


def stored_rows(database_url: str) -> list[dict[str, object]]:
    with EventLog(database_url) as log:
        return list(
            log.conn.execute(
                "SELECT originator_id, originator_version, topic FROM billing_events "
                "ORDER BY notification_id"
            ).fetchall()
        )


def test_the_fixture_holds_every_event_type_of_its_day(old_log: Billing, database_url: str) -> None:
    stored = {row["topic"] for row in stored_rows(database_url)}
    of_its_day = {entry["topic"] for entry in GOLDEN_TOPICS.values()}
    assert of_its_day <= {topic_of(event) for event in event_catalogue()}
    assert not of_its_day - stored, sorted(of_its_day - stored)


def test_every_aggregate_of_the_old_log_loads_at_its_last_version(
    old_log: Billing, database_url: str
) -> None:
    versions: dict[UUID, int] = {}
    kinds: dict[UUID, type[Aggregate]] = {}
    for row in stored_rows(database_url):
        originator = row["originator_id"]
        assert isinstance(originator, UUID)
        kinds.setdefault(originator, AGGREGATE_OF_MODULE[str(row["topic"]).split(":")[0]])
        versions[originator] = int(str(row["originator_version"]))
    by_kind: dict[type[Aggregate], list[UUID]] = defaultdict(list)
    for originator, kind in kinds.items():
        by_kind[kind].append(originator)
    for kind, ids in by_kind.items():
        loaded = old_log.load_many(kind, ids)
        assert {i: a.version for i, a in loaded.items()} == {i: versions[i] for i in ids}


@pytest.mark.parametrize("name", [n for n in READ_MODELS if n != "audit_seal"])
def test_every_read_model_projects_the_old_log(read_side: ReadSide, name: str) -> None:
    view = read_side.fresh(name, READ_MODELS[name].view_class)
    assert view.max_tracking_id(read_side.app.name) == read_side.app.queries.head()


def test_the_old_log_seals_and_verifies(read_side: ReadSide, old_log: Billing) -> None:
    assert verify(old_log, read_side.audit_seal()).ok


@pytest.mark.parametrize("start", ["at the beginning", "mid-log"])
def test_the_relay_encodes_every_old_public_event_on_its_subject_with_its_natural_ids(
    old_log: Billing, start: str
) -> None:
    """The wire form changed by design in issue 14 (the public contract): each old
    event with a public form validates against its public model, with the account,
    currency and run it needs, also for a relay that starts mid-log (its facts are
    looked up in the event store)."""
    log = NotificationLog(old_log.recorder)  # type: ignore[arg-type]
    rows = log.page(1, log.head(), 10_000)
    if start == "mid-log":
        rows = rows[len(rows) // 2 :]
    topics = sorted(STORED_TOPICS[name] for name in OPENERS)
    encoder = Encoder("billing", "golden", lambda ids: log.openings(ids, topics))
    encoder.prepare(rows)
    published = 0
    for row in rows:
        message = encoder.encode(row)
        event = row[3].rpartition(":")[2]
        if message is None:
            assert event not in PUBLIC_FORMS
            continue
        published += 1
        assert message.subject == subject_for(row[3])
        body = json.loads(message.body)
        PUBLIC_FORMS[event].model.model_validate(body)
        for natural_id in ("account_id", "currency", "run_id"):
            if natural_id in PUBLIC_FORMS[event].model.model_fields and natural_id != "run_id":
                assert body[natural_id], (event, natural_id, body)
        if body.get("document_type") == "credit_note" or event == "InvoiceCredited":
            assert body["run_id"] is None, "an operator's credit note belongs to no run"
        elif "run_id" in body and event.startswith("Invoice"):
            assert body["run_id"], (event, body)
    assert published > 100


def test_history_replays_every_old_run_and_account(old_log: Billing) -> None:
    history = History(old_log)
    for run_id in ("2026-01", "2026-02b", "park-08", "july-2026-07-01"):
        assert list(history.of_run(run_id))
    for account_id in ("A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7", "HQ", "BR"):
        assert list(history.of_account(account_id))


HISTORY_RUNS = ("2026-01", "2026-02b", "park-08", "july-2026-07-01")
HISTORY_ACCOUNTS = ("A-1", "A-2", "A-3", "A-4", "A-5", "A-6", "A-7", "HQ", "BR")


def digests(entries: Iterator[HistoryEntry]) -> list[str]:
    """Each `history --jsonl` line as its notification id and a digest of the line."""
    return [
        f"{entry.notification_id} "
        + hashlib.sha256(
            json.dumps(entry.as_json(), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        for entry in entries
    ]


def outputs_of(read_side: ReadSide, billing: Billing) -> dict[str, object]:
    """Everything a user or subscriber sees of the old log, as plain JSON."""
    checksums = {
        name: read_side.fresh(name, READ_MODELS[name].view_class).checksum()
        for name in READ_MODELS
        if name != "audit_seal"
    }
    log = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    # The public contract (issue 14) changed the relay's wire form by design: the
    # "relay" part was rewritten then (source "golden", public events only).
    topics = sorted(STORED_TOPICS[name] for name in OPENERS)
    encoder = Encoder("billing", "golden", lambda ids: log.openings(ids, topics))
    rows = log.page(1, log.head(), 10_000)
    encoder.prepare(rows)
    relay = [
        {
            "subject": message.subject,
            "headers": message.headers,
            "body_sha256": hashlib.sha256(message.body).hexdigest(),
        }
        for message in (encoder.encode(row) for row in rows)
        if message is not None
    ]
    history = History(billing)
    lines = {
        "log": digests(history.of_log()),
        **{f"run {r}": digests(history.of_run(r)) for r in HISTORY_RUNS},
        **{f"account {a}": digests(history.of_account(a)) for a in HISTORY_ACCOUNTS},
    }
    return {"read_models": checksums, "relay": relay, "history": lines}


def test_users_see_the_same_old_log_as_before_the_move(
    read_side: ReadSide, old_log: Billing
) -> None:
    """Read models rebuild to the same checksums, the relay sends the same subjects,
    headers and bodies, and history prints the same lines as before the move."""
    seen = json.loads(json.dumps(outputs_of(read_side, old_log), sort_keys=True, default=str))
    if os.environ.get("BILLRUN_GOLDEN_WRITE") == "1":
        GOLDEN_OUTPUTS.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN_OUTPUTS.read_text())
    assert seen["read_models"] == expected["read_models"]
    assert seen["relay"] == expected["relay"]
    for name, lines in expected["history"].items():
        assert seen["history"][name] == lines, name
