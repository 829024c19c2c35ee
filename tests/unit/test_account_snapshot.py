"""An account's snapshot holds its whole state: rebuilt from the snapshot (through
the event store's JSON), it is the account its events rebuild, and it bills
exactly what that account would."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from application.shared.snapshots import snapshots_due
from domain.billing.account import Account
from domain.billing.buyer import BuyerDetails
from domain.billing.snapshot import AccountSnapshot
from domain.billing.terms import BillingScope
from domain.shared.errors import DomainError
from domain.shared.model import AggregateSnapshot
from domain.shared.periods import Period
from infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from tests.unit.test_reopen_run import AT, FEBRUARY, billed_account

MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
APRIL = Period(date(2026, 4, 1), date(2026, 4, 30))


def state(account: Account) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(account).items()
        if name not in ("_pending", "snapshot_version")
    }


def through_the_store(snapshot: AggregateSnapshot) -> Any:
    """The snapshot as the store keeps it (JSON) and gives it back."""
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    return mapper.to_domain_event(mapper.to_stored_event(snapshot))  # type: ignore[arg-type]


def a_long_history() -> Account:
    """Every kind of state: packages owed and caught up, usage and charges billed
    and not, a contract with a penalty, runs billed and one reopened, a member,
    held invoices, a bill day, buyer details."""
    account = billed_account()
    account.bill("feb", FEBRUARY, FEBRUARY.end, AT)  # leaves January owed
    account.bill("mar", MARCH, MARCH.end, AT, BillingScope(catch_up=True))
    account.record_usage("u2", "phone", Decimal("3.5"), date(2026, 4, 2), AT)
    account.bill("apr", APRIL, APRIL.end, AT)
    account.reopen_run("apr", AT)
    account.add_member("B", AT)
    account.hold_invoice(uuid4(), AT)
    account.track_open_invoice(uuid4(), AT)
    account.set_bill_day(15, AT)
    account.set_buyer_details(BuyerDetails(city="Lyon", country_code="FR"), AT)
    return account


def test_a_snapshot_holds_every_attribute_of_the_account() -> None:
    kept_by_the_base = {"id", "version", "modified_on", "snapshot_version"}
    attributes = set(state(Account.open("A", "A Ltd", "EUR", None, "g", AT))) - kept_by_the_base
    assert set(AccountSnapshot.state_fields()) == attributes


def test_an_account_rebuilt_from_its_snapshot_is_the_account_its_events_rebuild() -> None:
    account = a_long_history()
    replayed = Account.project(None, account.collect_events())
    assert replayed is not None and state(replayed) == state(account)

    restored = Account.project(None, [through_the_store(AccountSnapshot.take(account))])

    assert restored is not None
    assert state(restored) == state(replayed)
    assert restored.billed and restored.runs and restored.packages["phone"].unbilled_usage


def test_an_account_restored_from_a_snapshot_bills_what_its_replay_bills_and_nothing_twice() -> (
    None
):
    account = a_long_history()
    events = account.collect_events()
    restored = Account.project(None, [through_the_store(AccountSnapshot.take(account))])
    replayed = Account.project(None, events)
    assert restored is not None and replayed is not None
    may = Period(date(2026, 5, 1), date(2026, 5, 31))
    for period, run in ((APRIL, "apr-again"), (may, "may"), (may, "may-again")):
        assert restored.bill(run, period, period.end, AT) == replayed.bill(
            run, period, period.end, AT
        )
    assert [e.model_dump() for e in restored.collect_events()] == [
        e.model_dump() for e in replayed.collect_events()
    ]
    assert restored.bill("may-third", APRIL, APRIL.end, AT) == []


def test_a_snapshot_is_due_once_an_account_is_an_interval_past_its_last_one() -> None:
    account = Account.open("A", "A Ltd", "EUR", None, "g", AT)
    for day in range(1, 5):
        account.set_bill_day(day, AT)
    events = account.collect_events()  # versions 1..5
    aggregates = {account.id: account}
    assert snapshots_due(events, aggregates, interval=10) == []
    assert snapshots_due(events[:4], aggregates, 2) == [], "the account is ahead of them"
    assert [s.originator_version for s in snapshots_due(events[3:], aggregates, 5)] == [5]
    assert account.snapshot_version == 5
    account.set_bill_day(9, AT)
    assert snapshots_due(account.collect_events(), aggregates, 5) == [], "one event since"


def test_a_snapshot_of_an_account_without_events_is_refused() -> None:
    with pytest.raises(DomainError, match="has no events yet"):
        AccountSnapshot.take(Account(uuid4()))


def test_the_snapshot_timestamp_is_the_last_event_s() -> None:
    account = Account.open("A", "A Ltd", "EUR", None, "g", AT)
    later = datetime(2026, 2, 1, tzinfo=UTC)
    account.set_bill_day(3, later)
    assert AccountSnapshot.take(account).timestamp == later
