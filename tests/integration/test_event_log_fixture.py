"""Today's code keeps understanding every event billrun ever wrote: the log
committed in tests/golden (written at 43dce88, every event type) loads into a
fresh database, and every aggregate, read model, the seal, the relay's
encoding and history read it."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from application.billing import Billing
from application.history import History
from domain.account import Account
from domain.bill_group import BillGroup
from domain.bill_run import BillRun
from domain.catalogue import event_catalogue
from domain.exchange_rates import ExchangeRateBook
from domain.invoice import Invoice
from domain.invoice_numbers import InvoiceNumberSequence
from domain.model import Aggregate
from domain.receivables import Receivables
from domain.schedule import Schedule
from infrastructure.contract import OPENERS, PUBLIC_FORMS
from infrastructure.messaging import subject_for
from infrastructure.relay import Encoder, NotificationLog
from infrastructure.topics import STORED_TOPICS, topic_of
from projections.audit_seal import verify
from projections.catalog import READ_MODELS, ReadSide
from tests.golden.event_log import load_event_log
from tests.integration.helpers import EventLog

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
