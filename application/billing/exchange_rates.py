"""Recording exchange rates and the owner's base currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from application.shared.app import Billing
from application.shared.errors import ApplicationError
from domain.billing.exchange_rates import ExchangeRateBook
from domain.shared.inputs import InputRefused, check_date, check_decimal


class InvalidRate(ApplicationError):
    """An exchange rate billrun cannot bill with."""


def set_rate(billing: Billing, base: str, quote: str, rate: Decimal, effective: date) -> bool:
    """Record `1 base = rate quote` from `effective` on; False if already recorded.
    A rate beyond what billrun can bill (domain/shared/inputs.py) is refused."""
    try:
        check_decimal(rate)
        check_date(effective)
    except InputRefused as error:
        raise InvalidRate(f"{base}/{quote}: {error}") from None
    book = billing.get_rate_book()
    if not book.set_rate(base, quote, rate, effective, billing.clock()):
        return False
    billing.save(book)
    return True


def set_base_currency(billing: Billing, currency: str) -> bool:
    book = billing.get_rate_book()
    if not book.set_base_currency(currency, billing.clock()):
        return False
    billing.save(book)
    return True


def rate_table(book: ExchangeRateBook) -> list[tuple[str, date, Decimal]]:
    """Every recorded rate: (pair, effective date, rate), by pair then date."""
    return [
        (pair, effective, rate)
        for pair, by_date in sorted(book.history.items())
        for effective, rate in sorted(by_date.items())
    ]
