"""Schedules: occurrences, the bill period of each, run ids, and the refusals; the
run's disable/enable and lease rules the manager relies on."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from domain.runs.bill_run import BillRun
from domain.runs.events import ScheduleAdded
from domain.runs.schedule import Schedule, next_occurrence, occurrences, period_for, run_id_for
from domain.runs.schedule_terms import PeriodRule, Recurrence, ScheduleError, ScheduleTerms
from domain.runs.settings import RunOrigin, Selection
from domain.shared.errors import BillRunError, DomainError, RunNotRunnable
from domain.shared.periods import Period

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def terms(
    recurrence: str,
    at: datetime,
    period: str | None = None,
    **extra: Any,
) -> ScheduleTerms:
    rule = (
        period
        or {
            "once": "previous_month",
            "daily": "previous_day",
            "weekly": "previous_week",
            "monthly": "previous_month",
        }[recurrence]
    )
    return ScheduleTerms(recurrence=Recurrence(recurrence), at=at, period=PeriodRule(rule), **extra)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


OCCURRENCES = [
    # (name, terms, after, upto, expected occurrence dates)
    (
        "once, due",
        terms("once", utc(2026, 3, 5, 12)),
        None,
        utc(2026, 4, 1),
        [utc(2026, 3, 5, 12)],
    ),
    ("once, not yet due", terms("once", utc(2026, 3, 5, 12)), None, utc(2026, 3, 5, 11), []),
    (
        "once, already seen",
        terms("once", utc(2026, 3, 5, 12)),
        utc(2026, 3, 5, 12),
        utc(2026, 4, 1),
        [],
    ),
    (
        "daily from the start, at its time of day",
        terms("daily", utc(2026, 3, 1, 6)),
        None,
        utc(2026, 3, 4, 6),
        [utc(2026, 3, 1, 6), utc(2026, 3, 2, 6), utc(2026, 3, 3, 6), utc(2026, 3, 4, 6)],
    ),
    (
        "daily after a seen occurrence, not yet today's",
        terms("daily", utc(2026, 3, 1, 6)),
        utc(2026, 3, 2, 6),
        utc(2026, 3, 4, 5, 59),
        [utc(2026, 3, 3, 6)],
    ),
    (
        "daily across a leap day",
        terms("daily", utc(2028, 2, 27)),
        None,
        utc(2028, 3, 1),
        [utc(2028, 2, 27), utc(2028, 2, 28), utc(2028, 2, 29), utc(2028, 3, 1)],
    ),
    (
        "weekly on Monday, starting on a Wednesday",
        terms("weekly", utc(2026, 3, 4, 7), weekday=0),  # 2026-03-04 is a Wednesday
        None,
        utc(2026, 3, 31),
        [utc(2026, 3, 9, 7), utc(2026, 3, 16, 7), utc(2026, 3, 23, 7), utc(2026, 3, 30, 7)],
    ),
    (
        "weekly on the start's own weekday includes the start",
        terms("weekly", utc(2026, 3, 2, 7), weekday=0),
        utc(2026, 3, 1),
        utc(2026, 3, 10),
        [utc(2026, 3, 2, 7), utc(2026, 3, 9, 7)],
    ),
    (
        "monthly on 31: the last day of short months, then back to 31",
        terms("monthly", utc(2026, 1, 1, 6), day_of_month=31),
        None,
        utc(2026, 5, 31, 6),
        [
            utc(2026, 1, 31, 6),
            utc(2026, 2, 28, 6),
            utc(2026, 3, 31, 6),
            utc(2026, 4, 30, 6),
            utc(2026, 5, 31, 6),
        ],
    ),
    (
        "monthly on 30 in a leap February",
        terms("monthly", utc(2028, 1, 15), day_of_month=30),
        None,
        utc(2028, 3, 30),
        [utc(2028, 1, 30), utc(2028, 2, 29), utc(2028, 3, 30)],
    ),
    (
        "monthly on 29: February 28 in a common year",
        terms("monthly", utc(2027, 1, 1), day_of_month=29),
        None,
        utc(2027, 3, 29),
        [utc(2027, 1, 29), utc(2027, 2, 28), utc(2027, 3, 29)],
    ),
    (
        "monthly on 29: February 29 in a leap year, after a seen occurrence",
        terms("monthly", utc(2027, 1, 1), day_of_month=29),
        utc(2028, 1, 29),
        utc(2028, 3, 29),
        [utc(2028, 2, 29), utc(2028, 3, 29)],
    ),
    (
        "monthly: a day before the start's day waits for the next month",
        terms("monthly", utc(2026, 3, 10), day_of_month=1),
        None,
        utc(2026, 5, 1),
        [utc(2026, 4, 1), utc(2026, 5, 1)],
    ),
    (
        "monthly, years in: starts near `after`, not at the start",
        terms("monthly", utc(2000, 1, 1), day_of_month=1),
        utc(2026, 2, 1),
        utc(2026, 4, 1),
        [utc(2026, 3, 1), utc(2026, 4, 1)],
    ),
    (
        "on the schedule's own UTC offset: 00:30 CET is the day before in UTC",
        terms("daily", datetime(2026, 3, 1, 0, 30, tzinfo=CET)),
        None,
        utc(2026, 3, 2),
        [datetime(2026, 3, 1, 0, 30, tzinfo=CET), datetime(2026, 3, 2, 0, 30, tzinfo=CET)],
    ),
]


@pytest.mark.parametrize(
    ("schedule", "after", "upto", "expected"),
    [case[1:] for case in OCCURRENCES],
    ids=[case[0] for case in OCCURRENCES],
)
def test_occurrences(
    schedule: ScheduleTerms, after: datetime | None, upto: datetime, expected: list[datetime]
) -> None:
    assert list(occurrences(schedule, after, upto)) == expected


def test_the_next_occurrence_is_strictly_after() -> None:
    monthly = terms("monthly", utc(2026, 1, 1, 6), day_of_month=31)
    assert next_occurrence(monthly, utc(2026, 2, 28, 6)) == utc(2026, 3, 31, 6)
    assert next_occurrence(monthly, utc(2026, 2, 28, 5)) == utc(2026, 2, 28, 6)
    assert next_occurrence(terms("once", utc(2026, 3, 5)), utc(2026, 3, 5)) is None


PERIODS = [
    # (rule, occurrence, expected period)
    ("previous_month", utc(2026, 3, 1, 6), Period(date(2026, 2, 1), date(2026, 2, 28))),
    ("previous_month", utc(2028, 3, 31), Period(date(2028, 2, 1), date(2028, 2, 29))),
    ("previous_month", utc(2026, 1, 5), Period(date(2025, 12, 1), date(2025, 12, 31))),
    ("current_month", utc(2026, 2, 10), Period(date(2026, 2, 1), date(2026, 2, 28))),
    ("current_month", utc(2028, 2, 10), Period(date(2028, 2, 1), date(2028, 2, 29))),
    ("previous_day", utc(2028, 3, 1, 2), Period(date(2028, 2, 29), date(2028, 2, 29))),
    ("previous_day", utc(2026, 1, 1), Period(date(2025, 12, 31), date(2025, 12, 31))),
    ("previous_week", utc(2026, 3, 9, 7), Period(date(2026, 3, 2), date(2026, 3, 8))),
]


@pytest.mark.parametrize(("rule", "occurrence", "expected"), PERIODS)
def test_the_bill_period_of_an_occurrence(
    rule: str, occurrence: datetime, expected: Period
) -> None:
    schedule = terms("daily", utc(2020, 1, 1), period=rule)
    assert period_for(schedule, occurrence) == expected


def test_a_fixed_period_and_the_wall_clock_date() -> None:
    fixed = terms(
        "once", utc(2026, 4, 1), "fixed",
        period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
    )  # fmt: skip
    assert period_for(fixed, utc(2026, 4, 1)) == Period(date(2026, 1, 1), date(2026, 1, 31))
    # 00:30 CET on March 1 is Feb 28 in UTC: the schedule's clock decides.
    cet = terms("monthly", datetime(2026, 3, 1, 0, 30, tzinfo=CET), day_of_month=1)
    occurrence = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
    assert period_for(cet, occurrence) == Period(date(2026, 2, 1), date(2026, 2, 28))
    assert run_id_for("monthly", cet, occurrence) == "monthly-2026-03-01"


def test_run_ids_are_the_name_and_the_occurrence_date() -> None:
    daily = terms("daily", utc(2026, 3, 1, 6))
    ids = [run_id_for("nightly", daily, o) for o in occurrences(daily, None, utc(2026, 3, 3, 6))]
    assert ids == ["nightly-2026-03-01", "nightly-2026-03-02", "nightly-2026-03-03"]


def test_adding_a_schedule_again_with_the_same_terms_changes_nothing() -> None:
    schedule = Schedule.create("nightly")
    daily = terms("daily", utc(2026, 3, 1, 6))
    assert schedule.add(daily, NOW) is True
    [event] = schedule.collect_events()
    assert isinstance(event, ScheduleAdded) and event.terms == daily
    assert schedule.add(daily, NOW) is False
    assert not schedule.collect_events()
    with pytest.raises(ScheduleError, match="already exists"):
        schedule.add(terms("daily", utc(2026, 3, 1, 7)), NOW)


def test_a_removed_name_is_not_reused() -> None:
    schedule = Schedule.create("nightly")
    schedule.add(terms("daily", utc(2026, 3, 1, 6)), NOW)
    schedule.remove(NOW)
    assert not schedule.is_active
    with pytest.raises(ScheduleError, match="was removed"):
        schedule.add(terms("daily", utc(2026, 3, 1, 6)), NOW)
    with pytest.raises(ScheduleError, match="no schedule"):
        schedule.remove(NOW)
    assert len(schedule.collect_events()) == 2


REFUSED = [
    ("needs a UTC offset", dict(recurrence="daily", at=datetime(2026, 3, 1),
                                period="previous_day")),
    ("required by) weekly", dict(recurrence="weekly", at=NOW, period="previous_week")),
    ("is for (and required by) weekly", dict(recurrence="daily", at=NOW, period="previous_day",
                                          weekday=1)),
    ("required by) monthly", dict(recurrence="monthly", at=NOW, period="previous_month")),
    ("not 1..31", dict(recurrence="monthly", at=NOW, period="previous_month", day_of_month=32)),
    ("not 0 (Monday)", dict(recurrence="weekly", at=NOW, period="previous_week", weekday=7)),
    ("cannot bill a fixed period", dict(recurrence="monthly", at=NOW, period="fixed",
                                        day_of_month=1, period_start=date(2026, 1, 1),
                                        period_end=date(2026, 1, 31))),
    ("needs its start and end", dict(recurrence="once", at=NOW, period="fixed")),
    ("a monthly schedule billing previous_day would leave gaps",
     dict(recurrence="monthly", at=NOW, period="previous_day", day_of_month=1)),
    ("a weekly schedule billing previous_month would leave gaps",
     dict(recurrence="weekly", at=NOW, period="previous_month", weekday=0)),
    ("choose previous_day", dict(recurrence="daily", at=NOW, period="current_month")),
    ("before it starts", dict(recurrence="once", at=NOW, period="fixed",
                                     period_start=date(2026, 2, 1), period_end=date(2026, 1, 1))),
]  # fmt: skip


@pytest.mark.parametrize(("message", "fields"), REFUSED, ids=[r[0] for r in REFUSED])
def test_schedules_that_make_no_sense_are_refused_and_record_nothing(
    message: str, fields: dict[str, Any]
) -> None:
    schedule = Schedule.create("s")
    with pytest.raises(DomainError, match=re.escape(message)):
        schedule.add(ScheduleTerms(**fields), NOW)
    assert not schedule.collect_events()


def test_a_name_with_spaces_is_refused() -> None:
    with pytest.raises(ScheduleError, match="without spaces"):
        Schedule.create("my schedule").add(terms("daily", NOW), NOW)


# The run's side: disabled runs and leases -------------------------------------


def queued_run() -> BillRun:
    run = BillRun.schedule(
        "nightly-2026-03-02",
        Period(date(2026, 3, 1), date(2026, 3, 1)),
        None,
        Selection(),
        NOW,
        origin=RunOrigin(schedule="nightly", occurrence=utc(2026, 3, 2, 6)),
    )
    run.collect_events()
    return run


def test_a_run_remembers_the_schedule_occurrence_that_queued_it() -> None:
    run = BillRun.project(None, [])
    assert run is None
    run = queued_run()
    assert run.origin == RunOrigin(schedule="nightly", occurrence=utc(2026, 3, 2, 6))


def test_disable_and_enable_are_idempotent_and_refused_on_a_completed_run() -> None:
    run = queued_run()
    assert run.disable(NOW) is True
    assert run.disable(NOW) is False
    assert run.disabled
    with pytest.raises(RunNotRunnable, match="disabled"):
        run.lease("m1", NOW, NOW + timedelta(seconds=60))
    assert run.enable(NOW) is True
    assert run.enable(NOW) is False
    assert len(run.collect_events()) == 2
    run.start(1, 0, NOW)
    run.complete(NOW)
    with pytest.raises(RunNotRunnable, match="completed"):
        run.disable(NOW)
    with pytest.raises(RunNotRunnable, match="completed"):
        run.enable(NOW)


def test_a_live_lease_keeps_other_holders_out_until_it_expires() -> None:
    run = queued_run()
    run.lease("m1", NOW, NOW + timedelta(seconds=60))
    assert run.lease_is_live(NOW + timedelta(seconds=59))
    with pytest.raises(RunNotRunnable, match="leased by m1"):
        run.lease("m2", NOW + timedelta(seconds=30), NOW + timedelta(seconds=90))
    run.lease("m1", NOW + timedelta(seconds=30), NOW + timedelta(seconds=90))  # renewal
    later = NOW + timedelta(seconds=90)
    assert not run.lease_is_live(later)
    run.lease("m2", later, later + timedelta(seconds=60))  # expired: taken over
    assert run.lease_holder == "m2"
    assert run.release("m1", later) is False
    assert run.release("m2", later) is True
    assert run.lease_holder is None and not run.lease_is_live(later)
    with pytest.raises(BillRunError, match="expire after"):
        run.lease("m3", later, later)
