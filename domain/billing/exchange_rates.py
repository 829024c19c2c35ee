"""Exchange rates: recorded with the date they take effect, fixed per run.

An operator records rates (`1 BASE = RATE QUOTE` from a date on) in the
`ExchangeRateBook`, the event store's one book of rates, together with the
owner's base currency (the currency every line is also reported in). A bill run
takes a `RateSnapshot` when it starts: the rate of every pair in effect on its
posting date. The run converts with that snapshot only, and records it, so a
replay converts exactly as the run did, whatever was recorded later.

Conversion rounds once, with billrun's one rule (HALF_UP at the target
currency's minor unit). A pair missing in one direction is used inverted
(1 / rate, at 28 significant digits); a pair missing in both is an error that
names it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid5

from pydantic import Field

from domain.billing.events import BaseCurrencySet, ExchangeRateSet
from domain.billing.lines import InvoiceLine
from domain.billing.pricing import tax_on
from domain.shared.errors import DomainError
from domain.shared.ids import NAMESPACE
from domain.shared.model import Aggregate, ValueObject
from domain.shared.money import (
    PlainDecimal,
    exact_price,
    is_currency,
    round_to_currency,
    without_exponent,
)

EXCHANGE_RATE_BOOK_ID = uuid5(NAMESPACE, "exchange-rate-book")
UNIT_PRICE_QUANTUM = Decimal("0.000001")
"""Converted unit prices keep six decimals: they explain a line, the amount is
what is billed (and is converted from the original amount, not from these)."""


class MissingRate(DomainError):
    def __init__(self, source: str, target: str, on: date) -> None:
        super().__init__(
            f"no exchange rate {source}/{target} (or {target}/{source}) in effect on {on}: "
            f"record one with `billrun rates set {source} {target} RATE --date {on}`"
        )
        self.pair = f"{source}/{target}"


def pair(source: str, target: str) -> str:
    return f"{source}/{target}"


class RateSnapshot(ValueObject):
    """The rates a run converts with: every pair's rate in effect on `on`."""

    on: date
    base_currency: str | None = None
    rates: dict[str, PlainDecimal] = Field(default_factory=dict)

    def rate(self, source: str, target: str) -> Decimal:
        """How many `target` one `source` buys."""
        if source == target:
            return Decimal(1)
        direct = self.rates.get(pair(source, target))
        if direct is not None:
            return direct
        inverse = self.rates.get(pair(target, source))
        if inverse is not None:
            return without_exponent(Decimal(1) / inverse)
        raise MissingRate(source, target, self.on)

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal:
        return round_to_currency(amount * self.rate(source, target), target)

    def missing(self, pairs: set[tuple[str, str]]) -> list[str]:
        """The pairs of `pairs` this snapshot cannot convert, sorted."""
        absent = []
        for source, target in pairs:
            try:
                self.rate(source, target)
            except MissingRate:
                absent.append(pair(source, target))
        return sorted(absent)


class ExchangeRateBook(Aggregate):
    kind = "exchangerates"

    def __init__(self, aggregate_id: UUID = EXCHANGE_RATE_BOOK_ID) -> None:
        super().__init__(aggregate_id)
        self.base_currency: str | None = None
        self.history: dict[str, dict[date, Decimal]] = {}

    @classmethod
    def create(cls) -> ExchangeRateBook:
        return cls(EXCHANGE_RATE_BOOK_ID)

    def set_rate(self, base: str, quote: str, rate: Decimal, effective: date, at: datetime) -> bool:
        """Record `1 base = rate quote` from `effective` on; the same rate again records
        nothing (False). A different rate for the same pair and date replaces it: runs
        already started keep the snapshot they took."""
        for code in (base, quote):
            if not is_currency(code):
                raise DomainError(f"unknown ISO 4217 currency: {code!r}")
        if base == quote:
            raise DomainError(f"an exchange rate needs two currencies, not {base}/{quote}")
        if not rate.is_finite() or rate <= 0:
            raise DomainError(
                f"exchange rate {base}/{quote} must be a positive decimal, not {rate}"
            )
        if self.history.get(pair(base, quote), {}).get(effective) == rate:
            return False
        self._trigger(
            ExchangeRateSet, at, base=base, quote=quote, rate=rate, effective_date=effective
        )
        return True

    def set_base_currency(self, currency: str, at: datetime) -> bool:
        if not is_currency(currency):
            raise DomainError(f"unknown ISO 4217 currency: {currency!r}")
        if currency == self.base_currency:
            return False
        self._trigger(BaseCurrencySet, at, currency=currency)
        return True

    def snapshot(self, on: date) -> RateSnapshot:
        rates: dict[str, Decimal] = {}
        for key, by_date in sorted(self.history.items()):
            effective = [d for d in by_date if d <= on]
            if effective:
                rates[key] = by_date[max(effective)]
        return RateSnapshot(on=on, base_currency=self.base_currency, rates=rates)

    def _when_ExchangeRateSet(self, event: ExchangeRateSet) -> None:
        self.history.setdefault(pair(event.base, event.quote), {})[event.effective_date] = (
            event.rate
        )

    def _when_BaseCurrencySet(self, event: BaseCurrencySet) -> None:
        self.base_currency = event.currency


def convert_line(line: InvoiceLine, currency: str, rates: RateSnapshot) -> InvoiceLine:
    """`line` as it goes onto an invoice in `currency`, with its base-currency amount.

    A line in another currency (an account billed onto its invoicer's invoice) is
    converted: amount rounded once in the invoice's currency, its tax computed
    again on that amount (billrun's per-line rule, in the currency the tax is
    declared in), and the original amount, currency and rate kept on the line.
    """
    if line.currency != currency:
        rate = rates.rate(line.currency, currency)
        amount = round_to_currency(line.amount * rate, currency)
        line = line.model_copy(
            update={
                "amount": amount,
                "unit_amount": exact_price(
                    (line.unit_amount * rate).quantize(UNIT_PRICE_QUANTUM), currency
                ),
                "tax": tax_on(amount, line.tax_rate, currency),
                "currency": currency,
                "original_currency": line.currency,
                "original_amount": line.amount,
                "exchange_rate": rate,
            }
        )
    base = rates.base_currency
    if base is None:
        return line
    return line.model_copy(
        update={"base_currency": base, "base_amount": rates.convert(line.amount, currency, base)}
    )
