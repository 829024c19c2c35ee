"""Schedules: when bill runs are queued, and which bill period each one bills.

A schedule is one-off (`once`, at an instant) or recurring (`daily`, `weekly` on a
weekday, `monthly` on a day of the month). Its occurrences are instants; each
occurrence is queued as exactly one bill run whose id is derived from the
schedule's name and the occurrence's date (`run_id_for`), so two schedulers
queueing the same occurrence create the same run id and the event store lets one
of them through.

Occurrences are computed on the wall clock of the schedule's start (`at`), in
its UTC offset as given (a fixed offset: no daylight-saving rules). A recurring
schedule's occurrences are at the start's time of day, on the matching dates on
or after the start's date. Monthly on day N uses anchor-day arithmetic: a month
too short for N has its occurrence on its last day, and the next month is back
on day N (monthly on 31: Jan 31, Feb 28 or 29, Mar 31, Apr 30, ...).

The bill period of an occurrence on local date D (`period_for`):

- `previous_month`: the calendar month before D's month;
- `current_month`: D's calendar month;
- `previous_day`: the day before D;
- `previous_week`: the seven days before D (D - 7 .. D - 1);
- `fixed`: the same stated period (one-off schedules only: a recurring schedule
  would bill the same period again and again).

Pure: no I/O, no clock; `now` always comes in as an argument.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta, tzinfo
from uuid import UUID

from domain.runs.events import ScheduleAdded, ScheduleRemoved
from domain.runs.schedule_terms import (
    PeriodRule,
    Recurrence,
    ScheduleError,
    ScheduleTerms,
    required,
)
from domain.shared.ids import schedule_uuid
from domain.shared.model import Aggregate
from domain.shared.periods import Period, add_months


class Schedule(Aggregate):
    """A named schedule. Names are never reused, even after removal: the runs a
    schedule queues are named after it, so a new schedule under an old name could
    find its occurrences already taken by the old one's runs."""

    kind = "schedule"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.terms: ScheduleTerms | None = None
        self.added_at: datetime | None = None
        self.removed_at: datetime | None = None

    @classmethod
    def create(cls, name: str) -> Schedule:
        """A schedule not added yet (or the aggregate to load `name` into)."""
        schedule = cls(schedule_uuid(name))
        schedule.name = name
        return schedule

    @property
    def is_active(self) -> bool:
        return self.terms is not None and self.removed_at is None

    @property
    def active_terms(self) -> ScheduleTerms:
        if self.terms is None or self.removed_at is not None:
            raise ScheduleError(f"schedule {self.name!r} is not active")
        return self.terms

    def add(self, terms: ScheduleTerms, at: datetime) -> bool:
        """Add the schedule; the same terms again change nothing (False)."""
        if not self.name.strip() or any(c.isspace() for c in self.name):
            raise ScheduleError(f"a schedule needs a name without spaces, not {self.name!r}")
        terms.check()
        if self.removed_at is not None:
            raise ScheduleError(
                f"schedule {self.name!r} was removed on {self.removed_at.date()}; a name is "
                "used once (its runs are named after it): choose another name"
            )
        if self.terms is not None:
            if self.terms == terms:
                return False
            raise ScheduleError(
                f"schedule {self.name!r} already exists ({self.terms.describe()}, period "
                f"{self.terms.describe_period()}); remove it and add one under another name"
            )
        self._trigger(ScheduleAdded, at, name=self.name, terms=terms)
        return True

    def remove(self, at: datetime) -> None:
        if not self.is_active:
            raise ScheduleError(f"no schedule {self.name!r} to remove")
        self._trigger(ScheduleRemoved, at, name=self.name)

    def _when_ScheduleAdded(self, event: ScheduleAdded) -> None:
        self.name = event.name
        self.terms = event.terms
        self.added_at = event.timestamp

    def _when_ScheduleRemoved(self, event: ScheduleRemoved) -> None:
        self.removed_at = event.timestamp


# Occurrences ------------------------------------------------------------------


def occurrences(terms: ScheduleTerms, after: datetime | None, upto: datetime) -> Iterator[datetime]:
    """The occurrences in (after, upto], oldest first (`after` None: from the start).

    Lazy, and it starts near `after` rather than at the schedule's start, so a
    schedule that has run for years costs nothing to advance."""
    for occurrence in _from(terms, after):
        if occurrence > upto:
            return
        if after is None or occurrence > after:
            yield occurrence


def next_occurrence(terms: ScheduleTerms, after: datetime) -> datetime | None:
    """The first occurrence strictly after `after` (None: a one-off already past)."""
    for occurrence in _from(terms, after):
        if occurrence > after:
            return occurrence
    return None


def occurrence_date(terms: ScheduleTerms, occurrence: datetime) -> date:
    """The occurrence's date on the schedule's wall clock."""
    zone = required(terms.at.tzinfo, "UTC offset")
    return occurrence.astimezone(zone).date()


def run_id_for(name: str, terms: ScheduleTerms, occurrence: datetime) -> str:
    """The id of the run an occurrence queues: `<schedule name>-<occurrence date>`
    (a schedule has at most one occurrence a day)."""
    return f"{name}-{occurrence_date(terms, occurrence).isoformat()}"


def period_for(terms: ScheduleTerms, occurrence: datetime) -> Period:
    """The bill period of an occurrence, by the schedule's period rule."""
    day = occurrence_date(terms, occurrence)
    first_of_month = day.replace(day=1)
    rule = terms.period
    if rule is PeriodRule.FIXED:
        return Period(
            required(terms.period_start, "period start"), required(terms.period_end, "period end")
        )
    if rule is PeriodRule.PREVIOUS_MONTH:
        return Period(add_months(first_of_month, -1), first_of_month - timedelta(days=1))
    if rule is PeriodRule.CURRENT_MONTH:
        return Period(first_of_month, add_months(first_of_month, 1) - timedelta(days=1))
    if rule is PeriodRule.PREVIOUS_DAY:
        return Period(day - timedelta(days=1), day - timedelta(days=1))
    return Period(day - timedelta(days=7), day - timedelta(days=1))


def _from(terms: ScheduleTerms, after: datetime | None) -> Iterator[datetime]:
    """Candidate occurrences in order, none before the start, starting on or a
    little before `after`'s date (callers filter what is not after `after`)."""
    start = terms.at
    zone = required(start.tzinfo, "UTC offset")
    first_day = start.date()
    if after is not None:
        # Never earlier than the start; otherwise from the day before `after`
        # (a day's margin: the occurrence on `after`'s own date may be later).
        first_day = max(first_day, after.astimezone(zone).date() - timedelta(days=1))
    if terms.recurrence is Recurrence.ONCE:
        yield start
        return
    if terms.recurrence is Recurrence.DAILY:
        day = first_day
        while True:
            yield _at(day, start, zone)
            day += timedelta(days=1)
    if terms.recurrence is Recurrence.WEEKLY:
        weekday = required(terms.weekday, "weekday")
        day = first_day + timedelta(days=(weekday - first_day.weekday()) % 7)
        while True:
            yield _at(day, start, zone)
            day += timedelta(days=7)
    day_of_month = required(terms.day_of_month, "day of the month")
    month = first_day.replace(day=1)
    while True:
        day = month_day(month, day_of_month)
        if day >= start.date():
            yield _at(day, start, zone)
        month = add_months(month, 1)


def month_day(month: date, day_of_month: int) -> date:
    """Day N of `month`'s month, or its last day when the month is shorter."""
    last = calendar.monthrange(month.year, month.month)[1]
    return month.replace(day=min(day_of_month, last))


def _at(day: date, start: datetime, zone: tzinfo) -> datetime:
    return datetime.combine(day, start.timetz()).replace(tzinfo=zone)
