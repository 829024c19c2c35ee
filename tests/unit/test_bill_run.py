"""The bill run: its life cycle, its checkpoints and what it counts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from domain.runs.bill_run import BillRun
from domain.runs.events import RunBatchCompleted, RunCompleted, RunScheduled, RunStarted
from domain.runs.settings import RunSettings, RunStatus, Selection
from domain.runs.statistics import BatchCheckpoint, BatchStatistics
from domain.shared.errors import BillRunError, InvalidPeriod, RunNotRunnable, StaleCheckpoint
from domain.shared.ids import run_uuid
from domain.shared.periods import Period

SCHEDULED_AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
STARTED_AT = datetime(2026, 4, 1, 9, 5, tzinfo=UTC)
BATCH_AT = datetime(2026, 4, 1, 9, 6, tzinfo=UTC)
COMPLETED_AT = datetime(2026, 4, 1, 9, 10, tzinfo=UTC)
MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))


def stats(**counts: int | dict[str, Decimal]) -> BatchStatistics:
    return BatchStatistics(**counts)  # type: ignore[arg-type]


def scheduled(posting_date: date | None = None, selection: Selection | None = None) -> BillRun:
    return BillRun.schedule("2026-03", MARCH, posting_date, selection or Selection(), SCHEDULED_AT)


def running() -> BillRun:
    run = scheduled()
    run.start(log_position=100, accounts_in_scope=25, at=STARTED_AT)
    return run


def completed() -> BillRun:
    run = running()
    run.complete(COMPLETED_AT)
    return run


# -- Scheduling ----------------------------------------------------------------------


def test_scheduling_a_run_records_its_period_posting_date_and_selection():
    selection = Selection(groups=("monthly",))
    run = scheduled(date(2026, 4, 2), selection)
    assert run.id == run_uuid("2026-03")
    assert (run.run_id, run.period, run.posting_date, run.selection) == (
        "2026-03",
        MARCH,
        date(2026, 4, 2),
        selection,
    )
    assert run.status is RunStatus.SCHEDULED
    assert run.is_scheduled
    assert run.scheduled_at == SCHEDULED_AT
    [event] = run.collect_events()
    assert isinstance(event, RunScheduled)


def test_the_posting_date_defaults_to_the_period_end():
    run = scheduled(posting_date=None)
    assert run.posting_date == date(2026, 3, 31)
    assert run.same_terms(MARCH, None, Selection())
    assert run.same_terms(MARCH, date(2026, 3, 31), Selection())


@pytest.mark.parametrize(
    ("period", "posting_date", "selection", "same"),
    [
        (MARCH, None, Selection(), True),
        (Period(date(2026, 3, 1), date(2026, 3, 30)), None, Selection(), False),
        (MARCH, date(2026, 4, 1), Selection(), False),
        (MARCH, None, Selection(accounts=("ACME-001",)), False),
    ],
    ids=["same", "other period", "other posting date", "other selection"],
)
def test_a_run_knows_whether_it_was_scheduled_on_the_same_terms(
    period, posting_date, selection, same
):
    assert scheduled().same_terms(period, posting_date, selection) is same


@pytest.mark.parametrize("run_id", ["", "  "])
def test_a_run_needs_a_non_empty_id(run_id):
    with pytest.raises(BillRunError, match="non-empty id"):
        BillRun.schedule(run_id, MARCH, None, Selection(), SCHEDULED_AT)


def test_a_run_period_cannot_end_before_it_starts():
    with pytest.raises(InvalidPeriod):
        Period(date(2026, 3, 31), date(2026, 3, 1))


# -- Life cycle ----------------------------------------------------------------------


def test_a_run_goes_from_scheduled_to_running_to_completed():
    run = scheduled()
    run.start(log_position=100, accounts_in_scope=25, at=STARTED_AT)
    assert run.status is RunStatus.RUNNING
    assert (run.log_position, run.accounts_in_scope, run.started_at) == (100, 25, STARTED_AT)

    run.complete_batch(BatchCheckpoint(1, 40, stats(accounts_scanned=10), [1, 2, 3]), BATCH_AT)
    run.complete_batch(BatchCheckpoint(2, 90, stats(accounts_scanned=15), []), BATCH_AT)
    assert (run.batches, run.cursor) == (2, 90)

    run.complete(COMPLETED_AT)
    assert run.status is RunStatus.COMPLETED
    assert run.is_completed
    assert run.completed_at == COMPLETED_AT
    assert [type(e) for e in run.collect_events()] == [
        RunScheduled,
        RunStarted,
        RunBatchCompleted,
        RunBatchCompleted,
        RunCompleted,
    ]


def test_a_batch_checkpoint_records_the_invoice_numbers_it_used():
    run = running()
    run.collect_events()
    run.complete_batch(BatchCheckpoint(1, 40, stats(invoices=3), [7, 8, 9]), BATCH_AT)
    run.complete_batch(BatchCheckpoint(2, 80, stats(), []), BATCH_AT)
    first, second = run.collect_events()
    assert (first.first_invoice_number, first.last_invoice_number) == (7, 9)
    assert (second.first_invoice_number, second.last_invoice_number) == (None, None)


def test_a_run_with_no_batches_completes_with_empty_statistics():
    run = running()
    run.complete(COMPLETED_AT)
    completed_event = run.collect_events()[-1]
    assert isinstance(completed_event, RunCompleted)
    assert completed_event.batches == 0
    assert completed_event.statistics == BatchStatistics()


# -- Refusals record nothing -----------------------------------------------------------


def next_batch(run: BillRun) -> None:
    run.complete_batch(BatchCheckpoint(run.batches + 1, run.cursor + 1, stats(), []), BATCH_AT)


@pytest.mark.parametrize(
    ("make_run", "command", "refusal"),
    [
        pytest.param(
            running,
            lambda run: run.start(100, 25, STARTED_AT),
            RunNotRunnable,
            id="starting twice",
        ),
        pytest.param(
            completed,
            lambda run: run.start(100, 25, STARTED_AT),
            RunNotRunnable,
            id="starting a completed run",
        ),
        pytest.param(scheduled, next_batch, RunNotRunnable, id="a batch before the start"),
        pytest.param(completed, next_batch, RunNotRunnable, id="a batch after completion"),
        pytest.param(
            scheduled,
            lambda run: run.complete(COMPLETED_AT),
            RunNotRunnable,
            id="completing a run that has not started",
        ),
        pytest.param(
            completed,
            lambda run: run.complete(COMPLETED_AT),
            RunNotRunnable,
            id="completing twice",
        ),
    ],
)
def test_a_command_out_of_turn_is_refused_and_records_nothing(make_run, command, refusal):
    run = make_run()
    run.collect_events()
    status, version = run.status, run.version
    with pytest.raises(refusal):
        command(run)
    assert run.collect_events() == []
    assert (run.status, run.version) == (status, version)


@pytest.mark.parametrize(
    ("batch", "cursor"),
    [
        pytest.param(1, 80, id="a batch number already used"),
        pytest.param(3, 80, id="a batch number that skips one"),
        pytest.param(2, 40, id="a cursor that does not advance"),
        pytest.param(2, 39, id="a cursor that goes back"),
        pytest.param(0, 80, id="batch zero"),
    ],
)
def test_a_stale_checkpoint_is_refused_and_records_nothing(batch, cursor):
    run = running()
    run.complete_batch(BatchCheckpoint(1, 40, stats(accounts_scanned=10), [1]), BATCH_AT)
    run.collect_events()
    with pytest.raises(StaleCheckpoint, match="does not follow batch 1 at cursor 40"):
        run.complete_batch(BatchCheckpoint(batch, cursor, stats(accounts_scanned=99), []), BATCH_AT)
    assert run.collect_events() == []
    assert (run.batches, run.cursor, run.statistics.accounts_scanned) == (1, 40, 10)


# -- Statistics ------------------------------------------------------------------------


def test_batch_statistics_add_up_field_by_field_and_currency_by_currency():
    first = BatchStatistics(
        accounts_scanned=10,
        accounts_seen=8,
        accounts_billed=6,
        accounts_skipped=2,
        invoices=6,
        lines=14,
        totals={"EUR": Decimal("1200.00"), "USD": Decimal("19.99")},
    )
    second = BatchStatistics(
        accounts_scanned=5,
        accounts_seen=5,
        accounts_billed=1,
        accounts_skipped=4,
        invoices=1,
        lines=1,
        totals={"JPY": Decimal("5000"), "EUR": Decimal("0.01")},
    )
    assert first.plus(second) == BatchStatistics(
        accounts_scanned=15,
        accounts_seen=13,
        accounts_billed=7,
        accounts_skipped=6,
        invoices=7,
        lines=15,
        totals={"EUR": Decimal("1200.01"), "JPY": Decimal("5000"), "USD": Decimal("19.99")},
    )
    assert list(first.plus(second).totals) == ["EUR", "JPY", "USD"]
    assert first.plus(BatchStatistics()) == first
    assert first.plus(second) == second.plus(first)


def test_a_run_sums_its_batches_statistics():
    run = running()
    batches = [
        stats(accounts_scanned=10, accounts_billed=3, lines=5, totals={"EUR": Decimal("10.00")}),
        stats(accounts_scanned=10, accounts_billed=0, accounts_skipped=10),
        stats(accounts_scanned=5, accounts_billed=5, lines=5, totals={"EUR": Decimal("2.50")}),
    ]
    for number, batch in enumerate(batches, start=1):
        run.complete_batch(BatchCheckpoint(number, number * 10, batch, []), BATCH_AT)
    run.complete(COMPLETED_AT)
    expected = stats(
        accounts_scanned=25,
        accounts_billed=8,
        accounts_skipped=10,
        lines=10,
        totals={"EUR": Decimal("12.50")},
    )
    assert run.statistics == expected
    completed_event = run.collect_events()[-1]
    assert isinstance(completed_event, RunCompleted)
    assert (completed_event.batches, completed_event.statistics) == (3, expected)


def test_a_run_rebuilt_from_its_events_has_the_same_state():
    run = running()
    run.complete_batch(
        BatchCheckpoint(1, 40, stats(lines=2, totals={"EUR": Decimal("1.00")}), [1, 2]), BATCH_AT
    )
    run.complete(COMPLETED_AT)
    events = run.collect_events()
    reloaded = [type(e).model_validate_json(e.model_dump_json()) for e in events]
    rebuilt = BillRun.project(None, reloaded)
    assert rebuilt is not None
    assert vars(rebuilt) == vars(run)


# -- Selection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selection", "account_id", "bill_group", "included"),
    [
        (Selection(), "ACME-001", "monthly", True),
        (Selection(), "ZETA-9", "", True),
        (Selection(accounts=("ACME-001",)), "ACME-001", "monthly", True),
        (Selection(accounts=("ACME-001",)), "ACME-002", "monthly", False),
        (Selection(groups=("monthly",)), "ACME-002", "monthly", True),
        (Selection(groups=("monthly",)), "ACME-002", "quarterly", False),
        (Selection(groups=("monthly", "quarterly")), "ACME-002", "quarterly", True),
        (Selection(accounts=("ACME-009",), groups=("monthly",)), "ACME-009", "yearly", True),
        (Selection(accounts=("ACME-009",), groups=("monthly",)), "ACME-001", "monthly", True),
        (Selection(accounts=("ACME-009",), groups=("monthly",)), "ACME-001", "yearly", False),
    ],
)
def test_a_selection_includes_named_accounts_their_groups_or_everybody(
    selection, account_id, bill_group, included
):
    assert selection.includes(account_id, bill_group) is included


@pytest.mark.parametrize(
    ("selection", "description"),
    [
        (Selection(), "all accounts"),
        (Selection(accounts=("A", "B")), "accounts A, B"),
        (Selection(groups=("monthly",)), "groups monthly"),
        (Selection(accounts=("A",), groups=("monthly",)), "accounts A; groups monthly"),
    ],
)
def test_a_selection_describes_itself(selection, description):
    assert selection.describe() == description
    assert selection.is_all is (description == "all accounts")


def test_settings_and_statistics_stored_before_catch_up_existed_load_with_it_off():
    old_settings = {"bill_packages": True, "bill_usage": False, "categories": ["rent"]}
    old_statistics = {"accounts_scanned": 3, "lines": 2}

    settings = RunSettings.model_validate(old_settings)
    statistics = BatchStatistics.model_validate(old_statistics)

    assert (settings.catch_up, settings.scope.catch_up) == (False, False)
    assert statistics.stranded == 0
