"""History as an auditor reads it, time travel, and the run report, against real
PostgreSQL.

The expected histories are worked out here from the raw log with SQL (every
stored event, decoded), not through the code under test, so a history that
reads the wrong stretch, drops an event or lets another run's event in fails.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from application.runs.executor import BillRunExecutor, Progress
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import AccountNotFound, InvoiceNotFound, RunNotFound
from application.shared.history import History, HistoryEntry
from domain.billing.lines import InvoiceLine
from domain.billing.terms import ChargeTerms
from domain.invoicing.documents import InvoiceStatus
from domain.invoicing.invoice import Invoice
from domain.receivables.receivables import receivables_uuid
from domain.runs.settings import RunStatus, Selection
from domain.shared.ids import INVOICE_NUMBER_SEQUENCE_ID, account_uuid, invoice_uuid, run_uuid
from domain.shared.periods import Period
from projections.catalog import ReadSide
from tests.conftest import SteppingClock, account, import_accounts, package
from tests.integration.test_close_types import MONTHS, QUARTERLY, configure, run_timeline

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
RUN_EVENTS = {"RunScheduled", "RunStarted", "RunBatchCompleted", "RunCompleted"}
CAUSED_EVENTS = {
    "PackageBilled", "InvoiceOpened", "InvoiceLineAdded", "InvoiceClosed",
    "InvoiceNumbersReserved",
}  # fmt: skip
MILLISECOND = timedelta(milliseconds=1)

A_ACCOUNTS = [
    account("A-001", package("office", "100.00"), package("mail", "45.00", "quarterly")),
    account("A-002", package("desk", "320.00"), currency="GBP"),
    account("A-003", package("office", "75.50")),
    account("A-004", package("future", "50.00", start_date="2026-06-01")),  # nothing due
]
B_ACCOUNTS = [
    account("B-001", package("office", "200.00")),
    account("B-002", package("locker", "9000"), currency="JPY"),
    account(
        "B-003", package("office", "210.00"), package("mail", "12.50", "quarterly"), currency="GBP"
    ),
]


class RawLog:
    """Every stored event, decoded from its JSON with SQL alone."""

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)

    def rows(self) -> list[dict[str, Any]]:
        found = self.conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, "
            "convert_from(state, 'UTF8') AS state FROM billing_events ORDER BY notification_id"
        ).fetchall()
        return [
            {**r, "event": r["topic"].rsplit(":", 1)[-1], "state": json.loads(r["state"])}
            for r in found
        ]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw_log(database_url: str) -> Iterator[RawLog]:
    opened = RawLog(database_url)
    yield opened
    opened.close()


def key(row: dict[str, Any]) -> tuple[int, UUID, int, str]:
    return row["notification_id"], row["originator_id"], row["originator_version"], row["event"]


def keys(entries: list[HistoryEntry]) -> list[tuple[int, UUID, int, str]]:
    return [(e.notification_id, e.aggregate_id, e.version, e.event) for e in entries]


def interleaved_runs(app: Billing) -> None:
    """Run "a" bills the A accounts one per batch; after its first batch, run "b"
    bills the B accounts from start to end, so b's events sit inside a's stretch
    of the log (and a's next batch meets b's invoice numbers and reloads)."""
    import_accounts(app, *A_ACCOUNTS, *B_ACCOUNTS)
    schedule_run(app, "a", JANUARY, None, Selection(accounts=("A-001", "A-002", "A-003", "A-004")))
    schedule_run(app, "b", JANUARY, None, Selection(accounts=("B-001", "B-002", "B-003")))

    def run_b_after_the_first_batch(progress: Progress) -> None:
        if progress.batches == 1 and not app.get_run("b").is_completed:
            assert BillRunExecutor(app, 2).execute("b").run.is_completed

    a = BillRunExecutor(app, 1, on_progress=run_b_after_the_first_batch).execute("a")
    assert a.run.is_completed


# History of a run ---------------------------------------------------------------


def test_the_history_of_a_run_is_its_events_and_all_it_caused_and_nothing_of_another_run(
    billing: Billing, raw_log: RawLog
) -> None:
    interleaved_runs(billing)
    log = raw_log.rows()

    histories = {run_id: list(History(billing).of_run(run_id)) for run_id in ("a", "b")}

    def belongs_to(row: dict[str, Any], run_id: str) -> bool:
        return row["originator_id"] == run_uuid(run_id) or row["state"].get("run_id") == run_id

    a_ids = [r["notification_id"] for r in log if r["originator_id"] == run_uuid("a")]
    b_ids = [r["notification_id"] for r in log if belongs_to(r, "b")]
    assert a_ids[0] < b_ids[0] and b_ids[-1] < a_ids[-1], "b ran inside a's stretch of the log"
    for run_id, history in histories.items():
        other = "b" if run_id == "a" else "a"
        run = billing.get_run(run_id)
        expected = [key(r) for r in log if belongs_to(r, run_id)]
        assert keys(history) == expected
        ids = [e.notification_id for e in history]
        assert ids == sorted(set(ids)), "notification order, each event once"
        assert {e.event for e in history} == RUN_EVENTS | CAUSED_EVENTS
        for entry in history:
            if entry.aggregate_id == run_uuid(run_id):
                assert entry.event in RUN_EVENTS
            else:
                assert entry.event in CAUSED_EVENTS
                assert entry.payload["run_id"] == run_id
            assert entry.aggregate_id != run_uuid(other)
            assert entry.payload.get("run_id") != other
        counted = Counter(e.event for e in history)
        stats = run.statistics
        assert counted["RunBatchCompleted"] == run.batches
        assert counted["PackageBilled"] == counted["InvoiceLineAdded"] == stats.lines
        assert counted["InvoiceOpened"] == counted["InvoiceClosed"] == stats.invoices
        reserved = [e for e in history if e.event == "InvoiceNumbersReserved"]
        assert {e.aggregate_id for e in reserved} == {INVOICE_NUMBER_SEQUENCE_ID}
        assert sum(e.payload["count"] for e in reserved) == stats.invoices
        billed_accounts = {e.payload["account_id"] for e in history if e.event == "InvoiceOpened"}
        assert {e.aggregate_id for e in history if e.event.startswith("Invoice")} - {
            INVOICE_NUMBER_SEQUENCE_ID
        } == {invoice_uuid(run_id, a) for a in billed_accounts}
    assert {e.payload["account_id"] for e in histories["a"] if e.event == "InvoiceOpened"} == {
        "A-001",
        "A-002",
        "A-003",
    }


def test_a_history_entry_carries_the_stored_event_as_it_was_written(
    billing: Billing, raw_log: RawLog
) -> None:
    interleaved_runs(billing)
    stored = {r["notification_id"]: r for r in raw_log.rows()}

    for entry in History(billing).of_run("a"):
        row = stored[entry.notification_id]
        assert entry.aggregate_id == row["originator_id"]
        assert entry.version == row["originator_version"]
        assert entry.event == row["event"]
        # All of it but the schema version it was stored at (history hides it).
        written = {k: v for k, v in row["state"].items() if k != "class_version"}
        assert {**entry.payload, "timestamp": entry.timestamp} == written
        datetime.fromisoformat(entry.timestamp)
        assert entry.as_json() == {
            "notification_id": entry.notification_id,
            "timestamp": entry.timestamp,
            "aggregate": entry.aggregate,
            "aggregate_id": str(entry.aggregate_id),
            "version": entry.version,
            "event": entry.event,
            "payload": entry.payload,
        }
        json.dumps(entry.as_json())  # plain JSON, as exported


# History of an account and of an invoice ----------------------------------------


def test_the_history_of_an_account_holds_its_events_and_its_invoices_events(
    billing: Billing, raw_log: RawLog
) -> None:
    interleaved_runs(billing)
    schedule_run(billing, "feb", FEBRUARY, None, Selection(accounts=("A-001", "B-001")))
    BillRunExecutor(billing, 5).execute("feb")
    mine = {
        account_uuid("A-001"),
        receivables_uuid("A-001"),
        invoice_uuid("a", "A-001"),
        invoice_uuid("feb", "A-001"),
    }

    history = list(History(billing).of_account("A-001"))

    assert keys(history) == [key(r) for r in raw_log.rows() if r["originator_id"] in mine]
    assert {e.aggregate_id for e in history} == mine
    events = Counter(e.event for e in history)
    assert events["AccountOpened"] == 1
    assert events["PackageSubscribed"] == 2
    assert events["PackageBilled"] == 3  # office in January and February, mail in January
    assert events["InvoiceOpened"] == events["InvoiceClosed"] == 2
    assert not RUN_EVENTS & set(events)
    assert "InvoiceNumbersReserved" not in events
    assert events["InvoicePosted"] == 2  # its receivables: what it owes, and when
    assert {e.aggregate for e in history} == {"account", "invoice", "receivables"}


def test_history_shows_what_happened_not_the_schema_version_it_was_stored_at(
    billing: Billing, raw_log: RawLog
) -> None:
    """Receivables events are stored at class_version 2 (they carry the account and
    currency); history shows those fields and leaves the storage detail out."""
    interleaved_runs(billing)
    posted = [e for e in History(billing).of_account("A-001") if e.event == "InvoicePosted"]
    stored = [r["state"] for r in raw_log.rows() if r["event"] == "InvoicePosted"]

    assert posted and any(state.get("class_version") == 2 for state in stored)
    assert all("class_version" not in entry.payload for entry in posted)
    assert {entry.payload["account_id"] for entry in posted} == {"A-001"}


def test_the_history_of_an_account_never_billed_is_its_own_events(billing: Billing) -> None:
    interleaved_runs(billing)

    history = list(History(billing).of_account("A-004"))

    assert [e.event for e in history] == ["AccountOpened", "PackageSubscribed"]
    assert {e.aggregate_id for e in history} == {account_uuid("A-004")}


def test_the_history_of_an_invoice_is_its_opening_lines_and_closing(billing: Billing) -> None:
    interleaved_runs(billing)
    invoice_id = invoice_uuid("a", "A-001")
    invoice = billing.get_invoice(invoice_id)

    history = list(History(billing).of_invoice(invoice_id))

    assert [e.event for e in history] == [
        "InvoiceOpened", "InvoiceLineAdded", "InvoiceLineAdded", "InvoiceClosed",
    ]  # fmt: skip
    assert [e.version for e in history] == [1, 2, 3, 4]
    assert {e.aggregate_id for e in history} == {invoice_id}
    assert [e.payload["line"]["amount"] for e in history[1:3]] == ["100.00", "45.00"]
    closed = history[-1].payload
    assert (closed["number"], Decimal(closed["total"])) == (invoice.number, invoice.total)


def test_histories_of_unknown_runs_accounts_and_invoices_are_refused_before_streaming(
    billing: Billing,
) -> None:
    interleaved_runs(billing)
    history = History(billing)

    with pytest.raises(RunNotFound, match="no bill run 'nope'"):
        history.of_run("nope")
    with pytest.raises(AccountNotFound, match="no account 'NOPE-1'"):
        history.of_account("NOPE-1")
    unknown = uuid4()
    with pytest.raises(InvoiceNotFound, match=str(unknown)):
        history.of_invoice(unknown)


# Time travel --------------------------------------------------------------------


def test_an_account_as_of_an_instant_between_two_of_its_events_is_the_earlier_state(
    billing: Billing, clock: SteppingClock
) -> None:
    import_accounts(billing, A_ACCOUNTS[0])
    opened_at = clock.now  # the import's one reading of the clock
    renamed = {**A_ACCOUNTS[0], "name": "A One Renamed"}
    import_accounts(billing, renamed)
    renamed_at = clock.now
    schedule_run(billing, "a", JANUARY, None, Selection())
    BillRunExecutor(billing, 5).execute("a")
    now = billing.get_account("A-001")
    assert opened_at < renamed_at

    before_rename = billing.get_account("A-001", as_of=renamed_at - MILLISECOND / 2)
    before_billing = billing.get_account("A-001", as_of=renamed_at)

    assert (before_rename.name, before_rename.version) == ("A-001 Ltd", 3)
    assert (before_billing.name, before_billing.version) == ("A One Renamed", 4)
    assert before_billing.packages["office"].next_bill_date == date(2026, 1, 1)
    assert now.packages["office"].next_bill_date == date(2026, 2, 1)
    assert now.version > before_billing.version
    at_opening = billing.get_account("A-001", as_of=opened_at)
    assert set(at_opening.packages) == {"office", "mail"}


def test_an_account_at_a_version_is_the_state_after_that_many_events(billing: Billing) -> None:
    import_accounts(billing, A_ACCOUNTS[0])

    first = billing.get_account("A-001", version=1)
    second = billing.get_account("A-001", version=2)

    assert (first.version, first.packages) == (1, {})
    assert (first.name, first.currency) == ("A-001 Ltd", "EUR")
    assert (second.version, set(second.packages)) == (2, {"office"})


def test_a_run_as_of_an_instant_or_at_a_version_is_the_run_as_it_was(
    billing: Billing, clock: SteppingClock
) -> None:
    import_accounts(billing, *A_ACCOUNTS)
    schedule_run(billing, "a", JANUARY, None, Selection())
    scheduled_at = clock.now
    BillRunExecutor(billing, 2).execute("a")
    run = billing.get_run("a")
    assert run.started_at is not None and run.completed_at is not None

    scheduled = billing.get_run("a", as_of=run.started_at - MILLISECOND / 2)
    started = billing.get_run("a", as_of=run.started_at)
    almost = billing.get_run("a", as_of=run.completed_at - MILLISECOND / 2)
    at_two = billing.get_run("a", version=2)

    assert scheduled.scheduled_at == scheduled_at
    assert (scheduled.status, scheduled.version) == (RunStatus.SCHEDULED, 1)
    assert (started.status, started.version, started.batches) == (RunStatus.RUNNING, 2, 0)
    assert (almost.status, almost.batches) == (RunStatus.RUNNING, run.batches)
    assert almost.statistics == run.statistics
    assert (at_two.status, at_two.version) == (RunStatus.RUNNING, 2)
    assert billing.get_run("a", as_of=run.completed_at).status is RunStatus.COMPLETED


def test_an_invoice_by_version_shows_every_step_and_by_instant_is_absent_or_closed(
    billing: Billing,
) -> None:
    """An invoice is opened, given its lines and closed in one transaction at one
    instant: by instant it did not exist yet or is closed; by version, every step."""
    interleaved_runs(billing)
    invoice_id = invoice_uuid("a", "A-001")
    invoice = billing.get_invoice(invoice_id)
    assert invoice.modified_on is not None

    opened = billing.get_invoice(invoice_id, version=1)
    one_line = billing.get_invoice(invoice_id, version=2)
    at_close = billing.get_invoice(invoice_id, as_of=invoice.modified_on)

    assert (opened.version, opened.status, opened.lines, opened.number) == (
        1, InvoiceStatus.OPEN, [], None,
    )  # fmt: skip
    assert (one_line.version, len(one_line.lines), one_line.total) == (2, 1, Decimal("100.00"))
    assert (at_close.version, at_close.status, at_close.number) == (
        4, InvoiceStatus.CLOSED, invoice.number,
    )  # fmt: skip
    with pytest.raises(InvoiceNotFound):
        billing.get_invoice(invoice_id, as_of=invoice.modified_on - MILLISECOND / 2)


def test_as_of_an_instant_before_creation_is_not_found(billing: Billing) -> None:
    interleaved_runs(billing)
    account = billing.get_account("A-001")
    run = billing.get_run("a")
    invoice = billing.get_invoice(invoice_uuid("a", "A-001"))
    assert account.created_on and run.scheduled_at and invoice.created_on

    with pytest.raises(AccountNotFound):
        billing.get_account("A-001", as_of=account.created_on - MILLISECOND)
    with pytest.raises(RunNotFound):
        billing.get_run("a", as_of=run.scheduled_at - MILLISECOND)
    with pytest.raises(InvoiceNotFound):
        billing.get_invoice(invoice.id, as_of=invoice.created_on - MILLISECOND)


# The run report -----------------------------------------------------------------


STEP_OF_KIND = {"recurring": "bill_packages", "usage": "bill_usage", "charge": "bill_charges"}
MONEY = ("amount", "tax", "total")
LINE_TAX = ("line_tax", "tax_rounding")


def line_totals(lines: list[InvoiceLine]) -> dict[str, Any]:
    amount = sum((line.amount for line in lines), Decimal(0))
    tax = sum((line.tax for line in lines), Decimal(0))
    return {"lines": len(lines), "amount": amount, "tax": tax, "total": amount + tax}


def expected_totals(invoices: list[Invoice]) -> dict[str, Any]:
    """Lines, amount, tax and total per step, per category and per currency, worked
    out from the invoices' own lines (the step from each line's kind)."""
    groups: dict[str, dict[tuple[str, str], list[InvoiceLine]]] = {"step": {}, "category": {}}
    for invoice in invoices:
        for line in invoice.lines:
            step = STEP_OF_KIND[line.kind.value]
            groups["step"].setdefault((step, invoice.currency), []).append(line)
            groups["category"].setdefault((line.category, invoice.currency), []).append(line)
    nested: dict[str, dict[str, dict[str, Any]]] = {"per_step": {}, "per_category": {}}
    for name, grouped in (("per_step", groups["step"]), ("per_category", groups["category"])):
        for (label, currency), lines in grouped.items():
            nested[name].setdefault(label, {})[currency] = line_totals(lines)
    per_currency: dict[str, dict[str, Any]] = {}
    for currency in sorted({i.currency for i in invoices}):
        mine = [i for i in invoices if i.currency == currency]
        billed = line_totals([line for i in mine for line in i.lines])
        invoice_tax = sum((i.tax for i in mine), Decimal(0))
        per_currency[currency] = {
            **billed,
            # The lines' own tax, and each invoice's rounding per rate on top of it.
            "line_tax": billed["tax"],
            "tax_rounding": invoice_tax - billed["tax"],
            "tax": invoice_tax,
            "total": billed["amount"] + invoice_tax,
            "invoices": len(mine),
            "invoiced": {
                "subtotal": sum((i.subtotal for i in mine), Decimal(0)),
                "tax": sum((i.tax for i in mine), Decimal(0)),
                "total": sum((i.total for i in mine), Decimal(0)),
            },
        }
    return {**nested, "per_currency": per_currency}


def as_decimals(value: Any) -> Any:
    """The report's JSON with money strings as Decimal, for exact comparison."""
    if isinstance(value, dict):
        return {
            k: Decimal(v)
            if k in (*MONEY, *LINE_TAX, "subtotal") and isinstance(v, str)
            else as_decimals(v)
            for k, v in value.items()
        }
    return value


def assert_report_adds_up_to_invoices(report: dict[str, Any], invoices: list[Invoice]) -> None:
    expected = expected_totals(invoices)
    assert as_decimals(report["per_step"]) == expected["per_step"]
    assert as_decimals(report["per_category"]) == expected["per_category"]
    per_currency = as_decimals(report["per_currency"])
    for currency, totals in per_currency.items():
        assert totals.pop("open_invoices") == 0, currency
    assert per_currency == expected["per_currency"]
    # The grand totals (billed lines, and invoices as closed) are the invoices' totals.
    for currency, totals in per_currency.items():
        mine = [i for i in invoices if i.currency == currency]
        grand = (totals["amount"], totals["tax"], totals["total"])
        assert grand == tuple(totals["invoiced"][k] for k in ("subtotal", "tax", "total"))
        assert grand == (
            sum((i.subtotal for i in mine), Decimal(0)),
            sum((i.tax for i in mine), Decimal(0)),
            sum((i.total for i in mine), Decimal(0)),
        )
    # The raw rows (line tax) and the invoices' rounding add up to the same totals.
    rows = [as_decimals(row) for row in report["steps"]]
    for currency, totals in per_currency.items():
        mine = [row for row in rows if row["currency"] == currency]
        assert sum(row["lines"] for row in mine) == totals["lines"]
        row_sums = {key: sum((row[key] for row in mine), Decimal(0)) for key in MONEY}
        assert row_sums["amount"] == totals["amount"]
        assert row_sums["tax"] == totals["line_tax"]
        assert row_sums["tax"] + totals["tax_rounding"] == totals["tax"]
        assert row_sums["total"] + totals["tax_rounding"] == totals["total"]


def test_the_run_report_counts_and_amounts_equal_the_runs_invoices(
    billing: Billing, es_env: dict[str, str]
) -> None:
    interleaved_runs(billing)
    read_side = ReadSide(billing, es_env)
    try:
        reports = {r: read_side.fresh_run_report().report(r) for r in ("a", "b")}
        assert read_side.fresh_run_report().report("nope") is None
    finally:
        read_side.close()

    for run_id, report in reports.items():
        assert report is not None
        run = billing.get_run(run_id)
        invoices = list(billing.load_many(Invoice, _invoice_ids(billing, run_id)).values())
        assert_report_adds_up_to_invoices(report, invoices)
        assert list(report["per_step"]) == ["bill_packages"]
        assert report["status"] == "completed"
        assert report["settings"] == run.settings.model_dump(mode="json")
        assert report["accounts"] == {
            "in_scope": run.accounts_in_scope,
            "scanned": run.statistics.accounts_scanned,
            "billed": run.statistics.accounts_billed,
            "skipped_nothing_due": run.statistics.accounts_skipped,
        }
        billed = {c: Decimal(v["amount"]) for c, v in report["per_currency"].items()}
        assert billed == run.statistics.totals
        assert sum(v["invoices"] for v in report["per_currency"].values()) == len(invoices)
        assert report["timings"]["batches"] == run.batches
    assert reports["a"]["accounts"]["skipped_nothing_due"] == 1
    assert set(reports["a"]["per_currency"]) == {"EUR", "GBP"}
    assert set(reports["b"]["per_currency"]) == {"EUR", "GBP", "JPY"}


C_ACCOUNTS = [
    account("C-001", package("office", "100.00"), package("phone", "20.00")),
    account("C-002", package("desk", "49.99"), package("parking", "15.00")),
    account("C-003", package("office", "80.00"), currency="GBP"),
]


def packages_usage_and_charges_at_two_rates(app: Billing) -> None:
    """C accounts taxed at 20 % (C-002: 6 %); C-001's phone taxed at 6 % in category
    `telecom`, with usage at two prices; a credit on C-002, a charge at 6 % on C-003."""
    import_accounts(app, *C_ACCOUNTS)
    for account_id, rate in (("C-001", "20"), ("C-002", "6"), ("C-003", "20")):
        found = app.get_account(account_id)
        found.change_details(
            found.name, found.invoice_email, found.bill_group, app.clock(), Decimal(rate)
        )
        if account_id == "C-001":
            phone = found.packages["phone"].terms
            changes = {"category": "telecom", "tax_rate": Decimal(6), "usage_rate": Decimal("0.07")}
            found.revise_package(phone.model_copy(update=changes), app.clock())
        app.save(found)
    c001 = app.get_account("C-001")
    c001.record_usage("call-1", "phone", Decimal("125"), date(2026, 1, 3), app.clock())
    c001.record_usage("call-2", "phone", Decimal("33"), date(2026, 1, 9), app.clock())
    c001.record_usage(
        "sms-1", "phone", Decimal("40"), date(2026, 1, 9), app.clock(), Decimal("0.045"), "SMS"
    )
    c002 = app.get_account("C-002")
    c002.add_charge(
        ChargeTerms(
            charge_id="goodwill",
            description="Goodwill credit",
            amount=Decimal("-12.34"),
            charge_date=date(2026, 1, 20),
            category="credits",
        ),
        app.clock(),
    )
    c003 = app.get_account("C-003")
    c003.add_charge(
        ChargeTerms(
            charge_id="install",
            description="Installation",
            amount=Decimal("35.55"),
            charge_date=date(2026, 1, 12),
            tax_rate=Decimal(6),
        ),
        app.clock(),
    )
    app.save(c001, c002, c003)


def test_the_run_report_of_packages_usage_and_a_credit_at_two_tax_rates_adds_up_to_the_invoices(
    billing: Billing, es_env: dict[str, str]
) -> None:
    packages_usage_and_charges_at_two_rates(billing)
    schedule_run(billing, "c", JANUARY, None, Selection())
    run = BillRunExecutor(billing, 2).execute("c").run
    invoices = list(
        billing.load_many(Invoice, [invoice_uuid("c", a["id"]) for a in C_ACCOUNTS]).values()
    )
    lines = [line for invoice in invoices for line in invoice.lines]
    assert len(invoices) == 3
    assert {line.kind.value for line in lines} == {"recurring", "usage", "charge"}
    assert {line.tax_rate for line in lines} == {Decimal(6), Decimal(20)}
    assert any(line.amount < 0 and line.tax < 0 for line in lines), "a credit, with its tax"

    read_side = ReadSide(billing, es_env)
    try:
        report = read_side.fresh_run_report().report("c")
    finally:
        read_side.close()

    assert report is not None
    assert_report_adds_up_to_invoices(report, invoices)
    assert list(report["per_step"]) == ["bill_packages", "bill_usage", "bill_charges"]
    assert list(report["per_category"]) == ["charges", "credits", "services", "telecom"]
    assert report["per_step"]["bill_usage"] == {
        # 158 minutes at 0.07 = 11.06 (tax 0.66); 40 SMS at 0.045 = 1.80 (tax 0.11)
        "EUR": {"lines": 2, "amount": "12.86", "tax": "0.77", "total": "13.63"}
    }
    assert report["per_step"]["bill_charges"] == {
        "EUR": {"lines": 1, "amount": "-12.34", "tax": "-0.74", "total": "-13.08"},
        "GBP": {"lines": 1, "amount": "35.55", "tax": "2.13", "total": "37.68"},
    }
    assert report["per_currency"]["GBP"]["invoiced"] == {
        "subtotal": "115.55", "tax": "18.13", "total": "133.68",
    }  # fmt: skip
    assert report["settings"] == run.settings.model_dump(mode="json")


def _invoice_ids(billing: Billing, run_id: str) -> list[UUID]:
    """The ids of the run's invoices: one per billed account, by its natural key."""
    candidates = [invoice_uuid(run_id, a["id"]) for a in A_ACCOUNTS + B_ACCOUNTS]
    return list(billing.load_many(Invoice, candidates))


def test_the_history_of_a_run_holds_the_closes_and_lines_it_made_on_invoices_opened_before(
    billing: Billing,
) -> None:
    # A user-bill-cycle invoice is opened by January's run, gets February's line from
    # February's run and is closed by April's run, when the quarterly package bills again.
    configure(billing, "user_bill_cycle", QUARTERLY)
    run_timeline(billing, "Q", MONTHS)
    january_invoice = invoice_uuid("jan", "Q")
    assert billing.get_invoice(january_invoice).closed_by_run == "apr"

    april = list(History(billing).of_run("apr"))
    february = list(History(billing).of_run("feb"))

    closes = [e for e in april if e.event == "InvoiceClosed"]
    assert [e.aggregate_id for e in closes if e.payload["closed_by_run"] == "apr"] == [
        january_invoice
    ]
    assert {e.aggregate_id for e in closes} >= {january_invoice}
    added = [
        e for e in february if e.event == "InvoiceLineAdded" and e.aggregate_id == january_invoice
    ]
    assert [e.payload["line"]["source"] for e in added] == ["charge:credit"]
    assert all(e.event != "InvoiceClosed" for e in february if e.aggregate_id == january_invoice)
