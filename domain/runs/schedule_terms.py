"""A schedule's terms: when it queues runs (recurrence) and which bill period each
run bills (period rule), with the settings and selection of those runs. The
rules are explained in `domain.runs.schedule`."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from domain.runs.settings import RunSettings, Selection
from domain.shared.errors import DomainError
from domain.shared.model import ValueObject
from domain.shared.periods import Period

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names, Monday first (`date.weekday()` is the index)."""


class ScheduleError(DomainError):
    pass


T = TypeVar("T")


def required(value: T | None, what: str) -> T:
    """`value`, which validated terms always have where it is asked for (their
    validator refuses terms without it); a ScheduleError, never None, if not."""
    if value is None:
        raise ScheduleError(f"the schedule's terms have no {what}")
    return value


class Recurrence(StrEnum):
    ONCE = "once"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class PeriodRule(StrEnum):
    """Which bill period an occurrence bills (see the module's docstring)."""

    PREVIOUS_MONTH = "previous_month"
    CURRENT_MONTH = "current_month"
    PREVIOUS_DAY = "previous_day"
    PREVIOUS_WEEK = "previous_week"
    FIXED = "fixed"


DEFAULT_PERIOD_RULE = {
    Recurrence.ONCE: PeriodRule.PREVIOUS_MONTH,
    Recurrence.DAILY: PeriodRule.PREVIOUS_DAY,
    Recurrence.WEEKLY: PeriodRule.PREVIOUS_WEEK,
    Recurrence.MONTHLY: PeriodRule.PREVIOUS_MONTH,
}
"""The period rule a schedule gets when it names none."""

TILING_RULES = {
    Recurrence.DAILY: (PeriodRule.PREVIOUS_DAY,),
    Recurrence.WEEKLY: (PeriodRule.PREVIOUS_WEEK,),
    Recurrence.MONTHLY: (PeriodRule.PREVIOUS_MONTH, PeriodRule.CURRENT_MONTH),
}
"""The period rules whose periods, one per occurrence, tile the calendar: each day
in exactly one run's period. Any other (monthly billing the previous day, say)
leaves days no run covers, whose package bill dates would be stranded."""


class ScheduleTerms(ValueObject):
    """What a schedule queues, when, and for which period."""

    recurrence: Recurrence
    at: datetime
    """The one-off instant; for a recurring schedule, the instant occurrences
    count from (its time of day is every occurrence's)."""
    weekday: int | None = None
    """Weekly: 0 = Monday .. 6 = Sunday."""
    day_of_month: int | None = None
    """Monthly: 1..31 (the last day in shorter months)."""
    period: PeriodRule
    period_start: date | None = None
    """`fixed` only."""
    period_end: date | None = None
    selection: Selection = Selection()
    settings: RunSettings = RunSettings()

    def check(self) -> None:
        """Refuse terms that describe no sensible schedule, saying why."""
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ScheduleError(f"the schedule's time {self.at.isoformat()} needs a UTC offset")
        weekly = self.recurrence is Recurrence.WEEKLY
        monthly = self.recurrence is Recurrence.MONTHLY
        if weekly != (self.weekday is not None):
            raise ScheduleError("a weekday is for (and required by) weekly schedules")
        if self.weekday is not None and not 0 <= self.weekday <= 6:
            raise ScheduleError(f"weekday {self.weekday} is not 0 (Monday) .. 6 (Sunday)")
        if monthly != (self.day_of_month is not None):
            raise ScheduleError("a day of the month is for (and required by) monthly schedules")
        if self.day_of_month is not None and not 1 <= self.day_of_month <= 31:
            raise ScheduleError(f"day of the month {self.day_of_month} is not 1..31")
        fixed = self.period is PeriodRule.FIXED
        if fixed and self.recurrence is not Recurrence.ONCE:
            raise ScheduleError(
                f"a {self.recurrence.value} schedule cannot bill a fixed period (it would bill "
                "the same period every time): choose previous_month, current_month, "
                "previous_day or previous_week"
            )
        if fixed != (self.period_start is not None and self.period_end is not None):
            raise ScheduleError("a fixed period needs its start and end, and only it has them")
        if self.period_start is not None and self.period_end is not None:
            Period(self.period_start, self.period_end)  # refuses an end before the start
        tiling = TILING_RULES.get(self.recurrence, ())
        if tiling and self.period not in tiling and not fixed:
            raise ScheduleError(
                f"a {self.recurrence.value} schedule billing {self.period.value} would leave "
                "gaps between its runs' periods, or bill days twice: its runs' periods must "
                f"follow each other, so choose {' or '.join(r.value for r in tiling)}"
            )
        if not (
            self.settings.bill_packages
            or self.settings.bill_usage
            or self.settings.bill_charges
            or self.settings.run_contracts
            or self.settings.run_dunning
            or self.settings.collect_payments
        ):
            raise ScheduleError("the schedule's runs would do nothing: enable at least one step")

    def describe(self) -> str:
        time = self.at.strftime("%H:%M") + _offset(self.at)
        if self.recurrence is Recurrence.ONCE:
            # Words a narrow table can wrap between, never cut inside.
            clock = self.at.strftime(
                "%H:%M:%S" if self.at.second or self.at.microsecond else "%H:%M"
            )
            return f"once on {self.at.date()} at {clock}{_offset(self.at)}"
        if self.recurrence is Recurrence.DAILY:
            return f"daily at {time}"
        if self.recurrence is Recurrence.WEEKLY:
            return f"weekly on {WEEKDAYS[required(self.weekday, 'weekday')]} at {time}"
        return f"monthly on day {self.day_of_month} at {time}"

    def describe_period(self) -> str:
        if self.period is PeriodRule.FIXED:
            return f"{self.period_start}..{self.period_end}"
        return self.period.value


def _offset(at: datetime) -> str:
    offset = at.utcoffset()
    return "Z" if not offset else at.strftime("%z")
