"""A bill run against real PostgreSQL, in process: every due bill date billed once,
onto one closed invoice per account, numbered without gaps, however often it is
executed or re-scheduled and whatever the batch size."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from application.runs.executor import BillRunExecutor, Progress
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.events import PackageBilled
from domain.invoicing.documents import InvoiceStatus
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.runs.events import RunBatchCompleted
from domain.runs.settings import RunStatus, Selection
from domain.shared.errors import RunAlreadyScheduled
from domain.shared.ids import account_uuid, invoice_uuid
from domain.shared.money import quantum
from domain.shared.periods import Period
from tests.conftest import SteppingClock, account, import_accounts, package
from tests.integration.helpers import (
    EventLog,
    assert_billed_at_most_once,
    billing_on,
    fresh_database,
    outcome,
    varied_accounts,
)

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
Q1 = Period(date(2026, 1, 1), date(2026, 3, 31))
EVERYONE = Selection()


def schedule_and_execute(
    billing: Billing,
    run_id: str,
    period: Period,
    selection: Selection = EVERYONE,
    batch_size: int = 2,
) -> BillRunExecutor:
    schedule_run(billing, run_id, period, None, selection)
    executor = BillRunExecutor(billing, batch_size)
    execution = executor.execute(run_id)
    assert execution.run.is_completed
    return executor


def invoices_of(billing: Billing, log: EventLog, run_id: str | None = None) -> list[Invoice]:
    """The run's invoices (all, without run_id), in invoice-number order."""
    ids = [s["originator_id"] for s in log.states(InvoiceOpened)]
    invoices = billing.load_many(Invoice, ids).values()
    chosen = [i for i in invoices if run_id is None or i.run_id == run_id]
    return sorted(chosen, key=lambda i: i.number or 0)


def test_a_run_bills_every_due_bill_date_onto_one_closed_invoice_per_account_in_account_order(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(
        billing,
        account(
            "ACME-001",
            package("office", "100.00"),
            package("support", "30.00", "quarterly", "arrears", start_date="2025-10-01"),
        ),
        account("BETA-002", package("future", "50.00", start_date="2026-06-01")),
        account("CORP-003", package("office", "80.00", start_date="2026-01-20")),
        account(
            "DELTA-004",
            package("licence", "12000", frequency="yearly", start_date="2026-01-15"),
            currency="JPY",
        ),
    )

    schedule_and_execute(billing, "2026-01", JANUARY)

    invoices = invoices_of(billing, log, "2026-01")
    assert [(i.number, i.account_id) for i in invoices] == [
        (1, "ACME-001"),
        (2, "CORP-003"),
        (3, "DELTA-004"),
    ]
    assert all(i.status is InvoiceStatus.CLOSED for i in invoices)
    assert [i.id for i in invoices] == [
        invoice_uuid("2026-01", a) for a in ("ACME-001", "CORP-003", "DELTA-004")
    ]
    acme, corp, delta = invoices
    assert [(line.source, line.service_period_start, line.amount) for line in acme.lines] == [
        ("package:office", date(2026, 1, 1), Decimal("100.00")),
        ("package:support", date(2025, 10, 1), Decimal("30.00")),
    ]
    assert [(line.service_period_start, line.service_period_end) for line in corp.lines] == [
        (date(2026, 1, 20), date(2026, 2, 19))
    ]
    assert (delta.currency, delta.total) == ("JPY", Decimal("12000"))
    assert all(line.run_id == "2026-01" for i in invoices for line in i.lines)
    assert log.package_billings() == {
        ("ACME-001", "office", "2026-01-01"): 1,
        ("ACME-001", "support", "2026-01-01"): 1,
        ("CORP-003", "office", "2026-01-20"): 1,
        ("DELTA-004", "licence", "2026-01-15"): 1,
    }
    assert billing.get_account("BETA-002").version == 2  # opened, subscribed: never billed


def test_executing_a_completed_run_again_bills_nothing_new_and_creates_no_invoice(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *varied_accounts(12))
    schedule_and_execute(billing, "2026-Q1", Q1)
    events_before = log.total()
    invoices_before = log.count(InvoiceOpened)

    again = BillRunExecutor(billing, 2).execute("2026-Q1")

    assert again.already_completed
    assert again.batches_committed == 0
    assert log.total() == events_before
    assert log.count(InvoiceOpened) == invoices_before
    assert_billed_at_most_once(log)


def test_scheduling_another_run_over_the_same_period_bills_nothing_and_creates_no_invoice(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *varied_accounts(12))
    schedule_and_execute(billing, "2026-Q1", Q1)
    billed_before = log.count(PackageBilled)
    invoices_before = log.count(InvoiceOpened)

    schedule_and_execute(billing, "2026-Q1-again", Q1)

    again = billing.get_run("2026-Q1-again")
    assert again.statistics.invoices == 0
    assert again.statistics.lines == 0
    assert again.statistics.accounts_skipped == again.statistics.accounts_seen == 12
    assert log.count(PackageBilled) == billed_before
    assert log.count(InvoiceOpened) == invoices_before
    assert_billed_at_most_once(log)


def test_a_three_month_window_bills_a_monthly_package_three_times(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, account("ACME-001", package("office", "100.00")))

    schedule_and_execute(billing, "2026-Q1", Q1)

    (invoice,) = invoices_of(billing, log)
    assert [(line.service_period_start, line.service_period_end) for line in invoice.lines] == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
    ]
    assert invoice.total == Decimal("300.00")
    assert billing.get_account("ACME-001").packages["office"].next_bill_date == date(2026, 4, 1)


def test_selecting_accounts_bills_only_those_accounts_and_a_later_run_bills_the_rest(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *(account(f"ACC-{i}", package("office")) for i in range(6)))

    schedule_and_execute(billing, "picked", JANUARY, Selection(accounts=("ACC-4", "ACC-1")))

    assert [i.account_id for i in invoices_of(billing, log, "picked")] == ["ACC-1", "ACC-4"]
    assert billing.get_run("picked").accounts_in_scope == 2
    schedule_and_execute(billing, "rest", JANUARY)
    rest = [i.account_id for i in invoices_of(billing, log, "rest")]
    assert rest == ["ACC-0", "ACC-2", "ACC-3", "ACC-5"]
    assert [i.number for i in invoices_of(billing, log)] == [1, 2, 3, 4, 5, 6]
    assert set(log.package_billings().values()) == {1}
    assert len(log.package_billings()) == 6


def test_selecting_a_bill_group_bills_only_that_group(billing: Billing, log: EventLog) -> None:
    import_accounts(
        billing,
        *(
            account(f"ACC-{i}", package("office"), bill_group="north" if i < 3 else "south")
            for i in range(6)
        ),
        account("ACC-6", package("office"), bill_group="west"),
    )

    schedule_and_execute(billing, "south-and-west", JANUARY, Selection(groups=("south", "west")))

    billed = [i.account_id for i in invoices_of(billing, log, "south-and-west")]
    assert billed == ["ACC-3", "ACC-4", "ACC-5", "ACC-6"]
    run = billing.get_run("south-and-west")
    assert run.statistics.accounts_scanned == 7  # groups are read from each account
    assert run.statistics.accounts_seen == run.statistics.accounts_billed == 4
    for north in ("ACC-0", "ACC-1", "ACC-2"):
        assert billing.get_account(north).packages["office"].next_bill_date == date(2026, 1, 1)


def test_scheduling_the_same_run_id_with_the_same_terms_is_a_no_op(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, account("ACME-001", package("office")))
    first = schedule_run(billing, "2026-01", JANUARY, None, EVERYONE)
    events = log.total()

    second = schedule_run(billing, "2026-01", JANUARY, date(2026, 1, 31), EVERYONE)

    assert first.created
    assert not second.created
    assert second.run.version == first.run.version == 1
    assert log.total() == events


@pytest.mark.parametrize(
    ("period", "posting_date", "selection"),
    [
        (FEBRUARY, None, EVERYONE),
        (JANUARY, date(2026, 2, 1), EVERYONE),
        (JANUARY, None, Selection(accounts=("ACME-001",))),
        (JANUARY, None, Selection(groups=("monthly",))),
    ],
    ids=["period", "posting-date", "accounts", "groups"],
)
def test_scheduling_the_same_run_id_with_different_terms_is_refused_and_writes_nothing(
    billing: Billing,
    log: EventLog,
    period: Period,
    posting_date: date | None,
    selection: Selection,
) -> None:
    import_accounts(billing, account("ACME-001", package("office")))
    schedule_run(billing, "2026-01", JANUARY, None, EVERYONE)
    events = log.total()

    with pytest.raises(RunAlreadyScheduled, match="run 2026-01 is already scheduled"):
        schedule_run(billing, "2026-01", period, posting_date, selection)

    assert log.total() == events
    run = billing.get_run("2026-01")
    assert (run.period, run.posting_date, run.selection) == (JANUARY, JANUARY.end, EVERYONE)


def test_invoice_numbers_are_unique_strictly_increasing_in_close_order_and_gapless_across_runs(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *varied_accounts(30))

    schedule_and_execute(billing, "jan-north", JANUARY, Selection(groups=("north",)), 4)
    schedule_and_execute(billing, "jan", JANUARY, batch_size=3)
    schedule_and_execute(billing, "feb", FEBRUARY, batch_size=5)
    schedule_and_execute(billing, "mar", MARCH, batch_size=7)
    schedule_and_execute(billing, "q1-again", Q1, batch_size=2)

    numbers = log.closed_numbers()
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) == log.count(InvoiceOpened)
    assert billing.get_invoice_sequence().last_number == len(numbers)
    per_run = Counter(i.run_id for i in invoices_of(billing, log))
    assert per_run["jan-north"] > 0 and per_run["jan"] > 0 and per_run["feb"] > 0
    assert per_run["q1-again"] == 0
    # Each checkpoint names exactly the numbers its batch closed, in order.
    ranges = [
        (s["first_invoice_number"], s["last_invoice_number"])
        for s in log.states(RunBatchCompleted)
        if s["first_invoice_number"] is not None
    ]
    flattened = [n for first, last in ranges for n in range(first, last + 1)]
    assert flattened == numbers
    assert_billed_at_most_once(log)


def test_invoice_totals_equal_the_sum_of_their_lines_in_exact_currency_units(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *varied_accounts(24))

    schedule_and_execute(billing, "2026-Q1", Q1, batch_size=5)

    invoices = invoices_of(billing, log)
    assert len(invoices) == 20  # 4 of the 24 accounts have nothing due
    for invoice in invoices:
        assert invoice.lines
        unit = quantum(invoice.currency)
        assert all(line.amount == line.amount.quantize(unit) for line in invoice.lines)
        assert invoice.subtotal == sum(line.amount for line in invoice.lines)
        assert invoice.tax == 0
        assert invoice.total == invoice.subtotal + invoice.tax
        assert invoice.total.as_tuple().exponent == unit.as_tuple().exponent


def test_the_run_statistics_match_its_invoices(billing: Billing, log: EventLog) -> None:
    import_accounts(billing, *varied_accounts(24))

    schedule_and_execute(billing, "2026-Q1", Q1, batch_size=5)

    run = billing.get_run("2026-Q1")
    invoices = invoices_of(billing, log, "2026-Q1")
    stats = run.statistics
    assert run.status is RunStatus.COMPLETED
    assert run.accounts_in_scope == stats.accounts_scanned == stats.accounts_seen == 24
    assert stats.invoices == stats.accounts_billed == len(invoices) == 20
    assert stats.accounts_skipped == 24 - 20
    assert stats.lines == sum(len(i.lines) for i in invoices) == log.count(PackageBilled)
    totals: dict[str, Decimal] = {}
    for invoice in invoices:
        totals[invoice.currency] = totals.get(invoice.currency, Decimal(0)) + invoice.total
    assert stats.totals == totals
    assert set(totals) == {"EUR", "USD", "JPY"}
    assert run.batches == 5  # ceil(24 / 5)


def test_small_batches_give_the_same_invoices_as_one_big_batch(
    billing: Billing, database_url: str, postgres_server: str
) -> None:
    accounts = varied_accounts(40)
    import_accounts(billing, *accounts)
    schedule_and_execute(billing, "2026-Q1", Q1, batch_size=3)

    with fresh_database(postgres_server) as other_url:
        with billing_on(other_url, clock=SteppingClock()) as other:
            import_accounts(other, *accounts)
            schedule_and_execute(other, "2026-Q1", Q1, batch_size=1000)
        big = outcome(other_url, "2026-Q1")
    small = outcome(database_url, "2026-Q1")

    assert small["runs"]["2026-Q1"].pop("batches") == 14
    assert big["runs"]["2026-Q1"].pop("batches") == 1
    assert small == big
    assert len(small["invoices"]) == 34


def test_an_account_opened_after_a_run_started_is_billed_by_the_next_run_not_lost(
    billing: Billing, log: EventLog
) -> None:
    import_accounts(billing, *(account(f"ACC-{i}", package("office")) for i in range(4)))
    schedule_run(billing, "first", JANUARY, None, EVERYONE)

    def open_a_late_account(progress: Progress) -> None:
        if progress.batches == 0:  # the run has started, nothing billed yet
            import_accounts(billing, account("LATE-9", package("office")))

    BillRunExecutor(billing, 2, open_a_late_account).execute("first")
    assert billing.get_run("first").accounts_in_scope == 4
    assert "LATE-9" not in {i.account_id for i in invoices_of(billing, log, "first")}

    schedule_and_execute(billing, "second", JANUARY)

    assert [i.account_id for i in invoices_of(billing, log, "second")] == ["LATE-9"]
    assert log.package_billings()[("LATE-9", "office", "2026-01-01")] == 1
    assert_billed_at_most_once(log)
    assert account_uuid("LATE-9") in {s["originator_id"] for s in log.states(PackageBilled)}
