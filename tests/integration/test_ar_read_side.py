"""The accounts-receivable read side against real PostgreSQL: the receivables view
against the Receivables aggregates it is built from, its balances, aging and
payment statuses, its rebuilds; and the run-status view's AR steps.

Each test states what the log holds (bill runs, payments, withdrawals, credit
notes, dunning, collection), builds the view from it, and compares: the view must
hold exactly what the aggregates say, whatever the batching.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking
from psycopg.sql import SQL

from application.receivables.collection import Collector
from application.receivables.payments import (
    PaymentRefused,
    reconcile_collections,
    record_payment,
    set_autopay,
    set_payment_terms,
)
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.receivables.collection import CollectionType
from domain.receivables.dunning import DunningRules, DunningStage
from domain.receivables.receivables import Receivables
from domain.runs.settings import RunSettings, Selection
from domain.shared.dispatch import Dispatch
from domain.shared.errors import DomainError
from domain.shared.periods import Period
from infrastructure.payment_gateway import SandboxGateway
from projections.catalog import ReadSide
from projections.rebuild import rebuild
from projections.receivables import BUCKETS, ReceivablesProjection, ReceivablesView, mask_token
from projections.run_report import RunReportProjection, RunReportView
from projections.runs import RunStatusProjection, RunStatusView
from projections.view import catch_up, open_view
from tests.conftest import account, import_accounts, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
ACCOUNTS = ("AR-EUR", "AR-JPY", "AR-DUN", "AR-WDR")
TOKEN = "tok_timeout_secret_4242"


def bill(app: Billing, run_id: str, period: Period, settings: RunSettings | None = None) -> None:
    schedule_run(app, run_id, period, None, Selection(), settings)
    gateway = SandboxGateway(app.recorder.datastore)  # type: ignore[attr-defined]
    assert BillRunExecutor(app, 3, gateway=gateway).execute(run_id).run.is_completed


def receivables(app: Billing, account_id: str) -> Receivables:
    found = app.find_receivables(account_id)
    assert found is not None, account_id
    return found


def ar_history(app: Billing) -> None:
    """Two months billed, then every way money moves on receivables:

    - AR-EUR pays January and half of February; goes on auto-pay with a token whose
      charge times out (the attempt stays pending), then is reconciled (approved);
    - AR-JPY pays three invoices' worth: the rest is credit, which pays March;
    - AR-DUN is dunned (stage 1, suspended), gets a notice, a credit note on
      February, then pays the rest and is reinstated;
    - AR-WDR pays part of January, which is then withdrawn (its payment moves to
      February); its own payment terms change before March.
    """
    import_accounts(
        app,
        account("AR-EUR", package("office", "100.00")),
        account("AR-JPY", package("desk", "5000"), currency="JPY"),
        account("AR-DUN", package("office", "80.00"), package("mail", "20.00")),
        account("AR-WDR", package("office", "60.00"), currency="GBP"),
    )
    bill(app, "2026-01", JANUARY)
    bill(app, "2026-02", FEBRUARY)
    record_payment(app, "AR-EUR", "bank-1", Decimal("150.00"), date(2026, 3, 1), "SEPA 1")
    record_payment(app, "AR-JPY", "bank-1", Decimal("15000"), date(2026, 3, 2))
    record_payment(app, "AR-WDR", "bank-1", Decimal("25.00"), date(2026, 3, 3))
    wdr = receivables(app, "AR-WDR")
    january = min(wdr.items.values(), key=lambda item: item.due_on)
    wdr.withdraw_invoice(january.document_id, "invoice rejected: billed twice", app.clock())
    app.save(wdr)
    set_payment_terms(app, "AR-WDR", 14)

    dun = receivables(app, "AR-DUN")
    rules = DunningRules.checked("strict", [DunningStage(days_overdue=10, suspend=True)])
    applied = dun.run_dunning("dunning-1", rules, date(2026, 4, 30), app.clock())
    assert applied and dun.suspended
    dispatch = Dispatch("file", "ap@example.test", "<n1@x>", None)
    dun.record_notice(applied[0].invoice_id, 1, dispatch, app.clock())
    february = max(dun.items.values(), key=lambda item: item.due_on)
    dun.post_credit_note(
        uuid4(), "CN-00000001", february.document_id, Decimal("30.00"), date(2026, 5, 2),
        app.clock(),
    )  # fmt: skip
    app.save(dun)
    record_payment(app, "AR-DUN", "bank-1", Decimal("170.00"), date(2026, 5, 3))
    assert not receivables(app, "AR-DUN").suspended

    set_autopay(app, "AR-EUR", TOKEN)
    # The gateway takes the money on May 5 (its answer is lost: a timeout).
    on_may_5 = lambda: datetime(2026, 5, 5, 12, tzinfo=UTC)  # noqa: E731
    gateway = SandboxGateway(app.recorder.datastore, clock=on_may_5)  # type: ignore[attr-defined]
    outcome = Collector(app, gateway).collect(
        "AR-EUR", "collect-1", CollectionType.ACCOUNT_BALANCE, date(2026, 5, 5)
    )
    assert outcome.attempt is not None and outcome.attempt.pending
    bill(app, "2026-03", MARCH)


def assert_view_matches_receivables(app: Billing, view: ReceivablesView, on: date) -> None:
    for account_id in ACCOUNTS:
        agg = receivables(app, account_id)
        row = view.account(account_id)
        assert row is not None
        assert (row.currency, row.credit, row.payment_terms_days, row.autopay,
                row.autopay_hint, row.suspended) == (
            agg.currency, agg.credit, agg.payment_terms_days, agg.autopay_token is not None,
            mask_token(agg.autopay_token), agg.suspended,
        )  # fmt: skip
        documents = {**agg.items, **agg.credit_notes}
        items = {item.document_id: item for item in view.items(account_id)}
        assert set(items) == set(documents)
        for document_id, item in items.items():
            expected = documents[document_id]
            assert (item.number, item.issued_on, item.due_on, item.amount, item.allocated,
                    item.withdrawn, item.dunning_stage, item.open_amount) == (
                expected.number, expected.issued_on, expected.due_on, expected.amount,
                expected.allocated, expected.withdrawn, expected.dunning_stage,
                expected.open_amount,
            )  # fmt: skip
            assert item.status(on) == expected.status(on).value
        balance = view.balance(account_id, on)
        assert balance is not None and balance.balance == agg.balance
        assert [i.document_id for i in balance.open_items] == sorted(
            (i.document_id for i in agg.open_items),
            key=lambda d: (documents[d].due_on, documents[d].issued_on, documents[d].number),
        )
        payments = {p.payment_id: p for p in view.payments(account_id)}
        assert set(payments) == set(agg.payments)
        for payment_id, payment in payments.items():
            event = agg.payments[payment_id]
            assert (payment.amount, payment.received_on, payment.method, payment.reference,
                    payment.credit) == (
                event.amount, event.received_on, event.method, event.reference, event.credit,
            )  # fmt: skip
            assert [(a.document_id, a.number, a.amount) for a in payment.allocations] == [
                (a.document_id, documents[a.document_id].number, a.amount)
                for a in event.allocations
            ]


@pytest.fixture
def view(es_env: dict[str, str]) -> Iterator[ReceivablesView]:
    opened = open_view(ReceivablesView, es_env)
    assert isinstance(opened, ReceivablesView)
    yield opened
    opened.datastore.close()


def test_the_receivables_view_holds_exactly_what_the_receivables_aggregates_hold(
    billing: Billing, view: ReceivablesView
) -> None:
    ar_history(billing)

    catch_up(billing, view, ReceivablesProjection.topics, page_size=4)

    assert view.max_tracking_id(billing.name) == billing.queries.head()
    assert_view_matches_receivables(billing, view, date(2026, 5, 31))
    assert view.pending_collections() == ["AR-EUR"]
    # The scenario reached what it says it does.
    jpy = view.account("AR-JPY")
    wdr = view.items("AR-WDR")
    dun = view.items("AR-DUN")
    assert jpy is not None and jpy.credit == Decimal("0")  # March paid from the credit
    assert [p.credit for p in view.payments("AR-JPY")] == [Decimal("5000")]
    assert [(i.withdrawn, i.allocated) for i in wdr][:2] == [
        (True, Decimal("0.00")), (False, Decimal("25.00"))
    ]  # fmt: skip
    assert {i.kind for i in dun} == {"invoice", "credit_note"}
    assert max(i.dunning_stage for i in dun) == 1
    eur = view.account("AR-EUR")
    assert eur is not None and eur.autopay and eur.autopay_hint == "tok_...4242"


def test_a_reconciled_collection_is_a_payment_in_the_view_and_no_longer_pending(
    billing: Billing, view: ReceivablesView
) -> None:
    ar_history(billing)
    catch_up(billing, view, ReceivablesProjection.topics)
    gateway = SandboxGateway(billing.recorder.datastore)  # type: ignore[attr-defined]

    done = reconcile_collections(billing, gateway, view.pending_collections(), date(2026, 5, 6))

    assert [(r.account_id, r.after is not None and r.after.pending) for r in done] == [
        ("AR-EUR", False)
    ]
    catch_up(billing, view, ReceivablesProjection.topics)
    assert view.pending_collections() == []
    collected = [p for p in view.payments("AR-EUR") if p.method == "collection"]
    # Dated the day the gateway charged, not the day it was reconciled.
    assert [(p.amount, p.received_on) for p in collected] == [(Decimal("50.00"), date(2026, 5, 5))]
    assert len(gateway.charges()) == 1, "charged once, whatever the timeout"
    assert_view_matches_receivables(billing, view, date(2026, 5, 31))


def test_the_view_built_event_by_event_in_pages_or_by_a_rebuild_has_the_same_rows(
    billing: Billing, es_env: dict[str, str], view: ReceivablesView
) -> None:
    ar_history(billing)
    # Event by event, the way the library's ProjectionRunner builds it.
    for notification in billing.recorder.select_notifications(1, 1_000_000):
        if notification.topic in ReceivablesProjection.topics:
            event = billing.mapper.to_domain_event(notification)
            ReceivablesProjection(view).process_event(
                event, Tracking(billing.name, notification.id)
            )
    one_by_one = view.checksum()
    assert all(not part.endswith("d41d8cd98f00b204e9800998ecf8427e")
               for part in one_by_one.split(";")), "rows in every table"  # fmt: skip

    read_side = ReadSide(billing, es_env)
    try:
        live = read_side.fresh_receivables()
        assert live.checksum() == one_by_one
        outcome = rebuild(read_side, "receivables", page_size=3)
        rebuilt = read_side.fresh_receivables()
        assert outcome.active == rebuilt.suffix == f"v{ReceivablesView.version}_2"
        assert rebuilt.checksum() == one_by_one
    finally:
        read_side.close()


def post(
    app: Billing, account_id: str, currency: str, invoices: list[tuple[date, str]]
) -> dict[date, UUID]:
    """Receivables of their own (no account needed) with invoices due on each date."""
    found = app.find_receivables(account_id) or Receivables.open(account_id, currency, app.clock())
    ids = {}
    for n, (due, amount) in enumerate(invoices, start=1):
        ids[due] = uuid4()
        issued = due - timedelta(days=30)
        found.post_invoice(ids[due], f"{account_id}-{n}", issued, due, Decimal(amount), app.clock())
    app.save(found)
    return ids


def test_aging_puts_each_open_amount_in_its_bucket_and_totals_each_currency(
    billing: Billing, view: ReceivablesView
) -> None:
    day = date(2026, 6, 30)
    days = {0: "1.00", -5: "2.00", 1: "4.00", 30: "8.00", 31: "16.00", 60: "32.00",
            61: "64.00", 90: "128.00", 91: "256.00", 400: "512.00"}  # fmt: skip
    post(billing, "AGE-EUR", "EUR", [(day - timedelta(days=d), a) for d, a in days.items()])
    post(billing, "AGE-EUR2", "EUR", [(day - timedelta(days=45), "10.00")])
    post(billing, "AGE-JPY", "JPY", [(day, "300"), (day - timedelta(days=100), "700")])
    aged = billing.get_receivables("AGE-EUR2")
    aged.receive_payment("p1", Decimal("25.00"), day, billing.clock())  # 10 paid, 15 credit
    billing.save(aged)
    billing.save(Receivables.open("AGE-NONE", "EUR", billing.clock()))

    catch_up(billing, view, ReceivablesProjection.topics)
    report = view.aging(day)

    rows = {row.account: row for row in report.rows}
    assert set(rows) == {"AGE-EUR", "AGE-EUR2", "AGE-JPY"}, "nothing open, no credit: left out"
    assert {k: str(v) for k, v in rows["AGE-EUR"].buckets.items()} == {
        "current": "3.00", "1-30": "12.00", "31-60": "48.00", "61-90": "192.00",
        "over_90": "768.00",
    }  # fmt: skip
    assert (rows["AGE-EUR2"].open_total, rows["AGE-EUR2"].credit, rows["AGE-EUR2"].balance) == (
        Decimal("0.00"), Decimal("15.00"), Decimal("-15.00")
    )  # fmt: skip
    totals = {row.currency: row for row in report.totals}
    assert {k: str(v) for k, v in totals["JPY"].buckets.items()} == {
        "current": "300", "1-30": "0", "31-60": "0", "61-90": "0", "over_90": "700"
    }  # fmt: skip
    assert totals["EUR"].balance == Decimal("1023.00") - Decimal("15.00")
    assert totals["EUR"].open_items == len(days)
    assert report.as_json()["buckets"] == list(BUCKETS)
    # One account's aging is the same row.
    balance = view.balance("AGE-EUR", day)
    assert balance is not None and balance.aging == rows["AGE-EUR"]
    overdue = sorted((d for d in days if d > 0), reverse=True)
    assert [item.days_overdue(day) for item in balance.open_items] == [*overdue, 0, 0]


def test_payment_status_says_paid_partially_paid_unpaid_overdue_or_withdrawn(
    billing: Billing, view: ReceivablesView
) -> None:
    due = date(2026, 3, 31)
    ids = post(
        billing, "ST-1", "EUR",
        [(due - timedelta(days=2), "10.00"), (due - timedelta(days=1), "10.00"), (due, "10.00"),
         (due + timedelta(days=1), "10.00")],
    )  # fmt: skip
    paid, partly, unpaid, withdrawn = sorted(ids.values(), key=lambda i: ids_by_id(ids)[i])
    found = billing.get_receivables("ST-1")
    found.receive_payment("p1", Decimal("14.00"), due, billing.clock())
    found.withdraw_invoice(withdrawn, "cancelled", billing.clock())
    billing.save(found)
    catch_up(billing, view, ReceivablesProjection.topics)

    statuses = view.payment_status([paid, partly, unpaid, withdrawn, uuid4()])

    assert set(statuses) == {paid, partly, unpaid, withdrawn}, "an unknown id is absent"
    on_due = {i: statuses[i].status(due) for i in statuses}
    assert on_due == {paid: "paid", partly: "overdue", unpaid: "unpaid", withdrawn: "withdrawn"}
    early = due - timedelta(days=5)
    assert statuses[partly].status(early) == "partially_paid"
    assert (statuses[partly].allocated, statuses[partly].open_amount) == (
        Decimal("4.00"), Decimal("6.00")
    )  # fmt: skip


def ids_by_id(ids: dict[date, UUID]) -> dict[UUID, date]:
    return {v: k for k, v in ids.items()}


def test_the_auto_pay_token_never_reaches_the_read_side(
    billing: Billing, view: ReceivablesView
) -> None:
    import_accounts(billing, account("TOK-1", package()))
    set_autopay(billing, "TOK-1", TOKEN)
    catch_up(billing, view, ReceivablesProjection.topics)

    with view.datastore.transaction(commit=False) as curs:
        for base in ReceivablesView.tables:
            curs.execute(
                SQL("SELECT count(*) AS n FROM {} t WHERE t::text LIKE %s").format(
                    view.table(base)
                ),
                (f"%{TOKEN[4:-4]}%",),
            )
            row = curs.fetchone()
            assert row is not None and row["n"] == 0, base
    shown = view.account("TOK-1")
    assert shown is not None and (shown.autopay, shown.autopay_hint) == (True, "tok_...4242")


def test_payments_are_refused_with_the_reason_and_nothing_written(billing: Billing) -> None:
    import_accounts(billing, account("REF-1", package()), account("REF-JPY", package("d", "500"),
                                                                  currency="JPY"))  # fmt: skip
    record_payment(billing, "REF-1", "p1", Decimal("10.00"), date(2026, 2, 1), "ref A")
    head = billing.queries.head()
    refusals: list[tuple[tuple[Any, ...], type[Exception], str]] = [
        (("REF-1", "p1", Decimal("11.00"), date(2026, 2, 1)), DomainError,
         "payment p1 is already recorded for REF-1 with 10.00 EUR on 2026-02-01"),
        (("REF-1", "p1", Decimal("10.00"), date(2026, 2, 1), "ref B"), PaymentRefused,
         "already recorded for REF-1 with reference ref A, not ref B"),
        (("REF-1", "p2", Decimal("1.001"), date(2026, 2, 1)), DomainError,
         "1.001 is not an amount of EUR"),
        (("REF-JPY", "p2", Decimal("1.5"), date(2026, 2, 1)), DomainError,
         "1.5 is not an amount of JPY"),
        (("REF-1", "p2", Decimal("0"), date(2026, 2, 1)), DomainError, "must be positive"),
        (("REF-1", "p2", Decimal("-5.00"), date(2026, 2, 1)), DomainError, "must be positive"),
        (("NOPE", "p2", Decimal("5.00"), date(2026, 2, 1)), Exception, "no account 'NOPE'"),
    ]  # fmt: skip
    for args, error, message in refusals:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            record_payment(billing, *args)
    assert billing.queries.head() == head
    again = record_payment(billing, "REF-1", "p1", Decimal("10.0"), date(2026, 2, 1))
    assert again.recorded is False
    assert billing.queries.head() == head


# The run-status view's AR steps -------------------------------------------------------


def test_the_run_status_view_follows_dunning_collection_failure_and_resumption(
    billing: Billing, es_env: dict[str, str]
) -> None:
    import_accounts(billing, account("RUN-1", package()), account("RUN-2", package("o", "50.00")))
    bill(billing, "2026-01", JANUARY)
    set_autopay(billing, "RUN-1", "tok_approved_visa")
    set_autopay(billing, "RUN-2", "tok_declined_visa")
    schedule_run(billing, "2026-02", FEBRUARY, None, Selection())
    run = billing.get_run("2026-02")
    run.fail("no exchange rate EUR/USD", billing.clock())
    billing.save(run)
    runs = open_view(RunStatusView, es_env)
    try:
        assert isinstance(runs, RunStatusView)
        catch_up(billing, runs, RunStatusProjection.topics)
        failed = runs.get("2026-02")
        assert failed is not None and (failed.status, failed.failure) == (
            "failed", "no exchange rate EUR/USD"
        )  # fmt: skip
        assert failed.as_json()["failure"] == "no exchange rate EUR/USD"

        run = billing.get_run("2026-02")
        run.resume(billing.clock())
        billing.save(run)
        catch_up(billing, runs, RunStatusProjection.topics)
        resumed = runs.get("2026-02")
        assert resumed is not None and (resumed.status, resumed.failure) == ("scheduled", None)

        settings = RunSettings(run_dunning=True, collect_payments=True)
        bill(billing, "2026-03", MARCH, settings)
        catch_up(billing, runs, RunStatusProjection.topics)
        row = runs.get("2026-03")
        stored = billing.get_run("2026-03")
        assert row is not None and row.status == "completed"
        assert row.collection == {
            "batches": stored.collection_batches,
            **{name: getattr(stored.collection, name)
               for name in ("attempts", "approved", "declined", "errors", "pending")},
            "collected": stored.collection.collected,
        }  # fmt: skip
        assert (row.collection["attempts"], row.collection["approved"],
                row.collection["declined"]) == (2, 1, 1)  # fmt: skip
        assert row.as_json()["collection"]["collected"] == {
            currency: str(amount) for currency, amount in stored.collection.collected.items()
        }
        assert list(row.collection["collected"]) == ["EUR"]
        assert row.counters["dunning_applied"] == stored.statistics.dunning_applied
        # The run report copes with the AR steps' settings and statistics.
        report_view = open_view(RunReportView, es_env)
        try:
            assert isinstance(report_view, RunReportView)
            catch_up(billing, report_view, RunReportProjection.topics)
            report = report_view.report("2026-03")
        finally:
            report_view.datastore.close()
        assert report is not None and report["status"] == "completed"
        assert (report["settings"]["run_dunning"], report["settings"]["collect_payments"]) == (
            True, True
        )  # fmt: skip
        assert report["accounts"]["billed"] == 2
    finally:
        runs.datastore.close()


def test_a_payment_whose_save_conflicts_is_allocated_again_on_what_the_other_left(
    billing: Billing, es_env: dict[str, str], view: ReceivablesView
) -> None:
    """Two payments at once must not pay the same invoice twice: the second save
    conflicts on the receivables' version, and the payment is allocated again."""
    import_accounts(billing, account("RACE-1", package("office", "100.00")))
    bill(billing, "2026-01", JANUARY)
    bill(billing, "2026-02", FEBRUARY)
    other = Billing(es_env)
    save = billing.save
    interleaved: list[bool] = []

    def save_after_the_other(*objs: Any, **kwargs: Any) -> Any:
        if not interleaved:  # the other payment commits between our load and our save
            interleaved.append(True)
            record_payment(other, "RACE-1", "theirs", Decimal("100.00"), date(2026, 3, 1))
        return save(*objs, **kwargs)

    billing.save = save_after_the_other  # type: ignore[method-assign]
    try:
        ours = record_payment(billing, "RACE-1", "ours", Decimal("100.00"), date(2026, 3, 1))
    finally:
        billing.save = save  # type: ignore[method-assign]
        other.close()

    assert interleaved and ours.recorded
    stored = receivables(billing, "RACE-1")
    january, february = sorted(stored.items.values(), key=lambda item: item.due_on)
    assert [a.document_id for a in stored.payments["theirs"].allocations] == [january.document_id]
    assert [a.document_id for a in ours.payment.allocations] == [february.document_id]
    assert {january.open_amount, february.open_amount, stored.credit} == {Decimal(0)}
    catch_up(billing, view, ReceivablesProjection.topics)
    row = view.balance("RACE-1", date(2026, 3, 1))
    assert row is not None and row.balance == Decimal("0.00") and row.open_items == []
