"""Billing frequencies, bill dates and service periods.

Bill dates use anchor-day arithmetic: the n-th bill date is always computed
from the anchor (the package's start date), never from the previous bill date,
so a package started on Jan 31 bills Jan 31, Feb 28 (29 in leap years), Mar 31,
Apr 30, ... A month that is too short clamps the day to its last day; the next
month goes back to the anchor's day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache

from domain.shared.errors import InvalidPeriod, NotABillDate


class Frequency(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"

    @property
    def months(self) -> int:
        return _MONTHS[self]


_MONTHS = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3, Frequency.YEARLY: 12}


class Timing(StrEnum):
    """When a recurring charge is billed relative to the service it pays for."""

    ADVANCE = "advance"  # a bill date D bills the service period that starts at D
    ARREARS = "arrears"  # a bill date D bills the service period ending the day before D


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved by `months` calendar months, clamping to the month's last day."""
    month_index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor.day, last_day))


@lru_cache(maxsize=65536)
def bill_date(anchor: date, frequency: Frequency, index: int) -> date:
    """The `index`-th bill date of a schedule anchored at `anchor` (index 0 is the anchor)."""
    return add_months(anchor, index * frequency.months)


def index_of_bill_date(anchor: date, frequency: Frequency, when: date) -> int:
    """The index of `when` in the schedule, or NotABillDate if it is not on it."""
    months = (when.year - anchor.year) * 12 + (when.month - anchor.month)
    index, remainder = divmod(months, frequency.months)
    if remainder == 0 and bill_date(anchor, frequency, index) == when:
        return index
    raise NotABillDate(
        f"{when.isoformat()} is not a bill date of a {frequency.value} schedule anchored "
        f"at {anchor.isoformat()} (bill dates are {bill_date(anchor, frequency, 0)}, "
        f"{bill_date(anchor, frequency, 1)}, {bill_date(anchor, frequency, 2)}, ...)"
    )


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A closed interval of days, [start, end]."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidPeriod(
                f"period ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})"
            )

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def service_period(anchor: date, frequency: Frequency, timing: Timing, index: int) -> Period:
    """The service period billed on the `index`-th bill date of a schedule."""
    if timing is Timing.ADVANCE:
        first, after = index, index + 1
    else:
        first, after = index - 1, index
    start = bill_date(anchor, frequency, first)
    end = bill_date(anchor, frequency, after) - timedelta(days=1)
    return Period(start, end)
