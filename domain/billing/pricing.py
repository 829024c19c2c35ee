"""Pricing: what one invoice line costs, its tax, and pro rata periods.

Every amount is rounded once, by `domain.shared.money.round_to_currency` (HALF_UP at
the currency's minor unit), at the end of its own computation:

- a recurring line: `price * days_used / days_in_service_period`, rounded; a
  whole period is simply the price (no division, so no rounding at all);
- a usage line: `sum(quantities) * unit price`, rounded (usage records of one
  package at one price and description become one line);
- a line's tax: `amount * rate / 100`, rounded per line. The invoice's tax is
  the sum of its lines' taxes and its total is subtotal + tax, so every total is
  an exact sum of printed figures. Per-line rounding was chosen over rounding
  the tax of each rate's subtotal because each line then carries its own final
  tax (a line moved, credited or reported on its own keeps its tax); the cost is
  that the invoice tax can differ by a few minor units from "subtotal x rate",
  which is why the rule is stated on the invoice's documentation.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from domain.shared.errors import InvalidPeriod
from domain.shared.money import round_to_currency
from domain.shared.periods import Period

HUNDRED = Decimal(100)


def overlap(period: Period, start: date, end: date | None) -> Period | None:
    """The days of `period` within [start, end] (end None: open-ended), or None."""
    first = max(period.start, start)
    last = period.end if end is None else min(period.end, end)
    if last < first:
        return None
    return Period(first, last)


def prorated(price: Decimal, used: Period, period: Period, currency: str) -> Decimal:
    """`price` for the `used` days of the service `period`, by days, rounded once.

    A 31-day month charges 1/31 of the price per day, February 1/28 (1/29 in a
    leap year), a quarter 1/90 to 1/92: the unit is the actual service period,
    not a 30-day month, so the full period always costs exactly the price.
    """
    if used.start < period.start or used.end > period.end:
        raise InvalidPeriod(f"{used} is not within the service period {period}")
    if used == period:
        return round_to_currency(price, currency)
    return round_to_currency(price * used.days / period.days, currency)


def tax_on(amount: Decimal, rate: Decimal, currency: str) -> Decimal:
    """The tax of one line at `rate` percent, rounded per line (see module docstring)."""
    return round_to_currency(amount * rate / HUNDRED, currency)
