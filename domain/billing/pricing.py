"""Pricing: what one invoice line costs, its tax, and pro rata periods.

Every amount is rounded once, by `domain.shared.money.round_to_currency` (HALF_UP at
the currency's minor unit), at the end of its own computation:

- a recurring line: `price * days_used / days_in_service_period`, rounded; a
  whole period is simply the price (no division, so no rounding at all);
- a usage line: `sum(quantities) * unit price`, rounded (usage records of one
  package at one price and description become one line);
- a line's tax: `amount * rate / 100`, rounded per line. It is informative (a
  line shown, previewed or reported on its own): it is never summed into an
  invoice's tax;
- an invoice's tax (`tax_by_rate`): for each tax rate, the rate's taxable amount
  (the sum of its lines' net amounts) x rate / 100, rounded once; the invoice's
  tax is the sum of these, its total subtotal + tax. This is EN 16931's rule
  (BR-CO-17): per-line rounding drifted one way over many same-rate lines (three
  5-yen lines at 10 %: 1 + 1 + 1 = 3 where 15 x 10 % = 2), which e-invoice
  validators reject. Totals still equal the sum of their parts: the per-rate
  amounts printed in the breakdown.
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
    """The tax of `amount` at `rate` percent, rounded once (a line's, or a rate's
    taxable amount on an invoice: see the module docstring)."""
    return round_to_currency(amount * rate / HUNDRED, currency)


def tax_by_rate(net_by_rate: dict[Decimal, Decimal], currency: str) -> dict[Decimal, Decimal]:
    """The tax of each rate's taxable amount, rounded once per rate (BR-CO-17)."""
    return {rate: tax_on(net, rate, currency) for rate, net in net_by_rate.items()}
