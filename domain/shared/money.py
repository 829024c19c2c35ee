"""Money and currencies.

The one rounding rule of billrun: an amount is rounded once, to its currency's
ISO 4217 minor unit, with ROUND_HALF_UP ("commercial rounding": 0.005 EUR -> 0.01).
It is applied to each invoice line when the line is priced; every total is then
the exact sum of already-rounded lines, so totals always equal the sum of their
lines. HALF_UP rather than banker's rounding because it is what customers and tax
authorities expect to see on an invoice (EN 16931 rounds line amounts this way).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated

from pydantic import PlainSerializer

from domain.shared.errors import CurrencyMismatch, UnknownCurrency

ROUNDING = ROUND_HALF_UP

# ISO 4217 minor units (the exponent). Currencies whose minor unit is "N.A."
# in the standard (XAU, XDR, ...) are deliberately absent: they cannot be billed.
MINOR_UNITS: dict[str, int] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
    "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2,
    "BND": 2, "BOB": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
    "CAD": 2, "CDF": 2, "CHF": 2, "CLF": 4, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2,
    "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2,
    "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2,
    "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2,
    "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0, "JMD": 2,
    "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0,
    "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2,
    "LYD": 3, "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2,
    "MRU": 2, "MUR": 2, "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2,
    "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2,
    "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2,
    "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2,
    "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2,
    "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2,
    "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYI": 0, "UYU": 2, "UYW": 4,
    "UZS": 2, "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XOF": 0,
    "XPF": 0, "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip


def minor_units(currency: str) -> int:
    """The number of decimal places of `currency` (JPY 0, EUR 2, KWD 3)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise UnknownCurrency(currency) from None


def is_currency(code: str) -> bool:
    return code in MINOR_UNITS


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`, as an exponent for `Decimal.quantize`."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    """Apply billrun's one rounding rule: HALF_UP at the currency's minor unit."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"amounts must be Decimal, not {type(amount).__name__}")
    try:
        rounded = amount.quantize(quantum(currency), rounding=ROUNDING)
    except InvalidOperation as error:
        raise ValueError(f"cannot round {amount} to {currency}") from error
    # -0.004 rounds to -0.00; an invoice must never print a negative zero.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def plain(value: Decimal) -> str:
    """`value` in positional notation, never `1E+2` or `1E-7`: the one way a Decimal
    leaves billrun as text (JSON, tables, documents, events). The value and its
    digits are unchanged; only the notation is.

    `str(Decimal)` switches to scientific notation for a positive exponent (what
    `normalize()` produces for 100) or a very small number; readers of an invoice,
    XML schemas and most JSON consumers refuse or misread that.
    """
    return format(value, "f")


PlainDecimal = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]
"""A Decimal field whose JSON form is `plain` (pydantic writes `str(value)`, which
is `1E+2` or `5E-8` for some values). Used on the fields whose values are derived
(converted unit prices, inverted rates) rather than on every model: a model-wide
serializer doubled the cost of dumping an event (measured: 8.8 -> 16.7 us for a
line), which the bill run's throughput cannot afford."""


def amount_text(amount: Decimal, currency: str) -> str:
    """A money amount as text at its currency's minor unit (`100.00`, JPY `100`)."""
    return plain(round_to_currency(amount, currency))


def exact_price(price: Decimal, currency: str) -> Decimal:
    """`price` unchanged in value, with at least the currency's minor unit (450 ->
    450.00, 1E+2 -> 100.00) and no trailing zeros beyond it (0.012500 -> 0.0125).

    Only the exponent changes, never the value: a unit price (or a converted one)
    may be finer than the currency and is kept as priced. The result's exponent
    is never positive, so `str()` of it is plain notation too.
    """
    normalized = price.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -minor_units(currency):
        return price.quantize(quantum(currency))
    return normalized


def without_exponent(value: Decimal) -> Decimal:
    """`value` with a non-positive exponent (1E+2 -> 100), for quantities and rates
    whose trailing zeros were normalized away; the value is unchanged."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return value.quantize(Decimal(1))
    return value


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency, always held at the currency's minor unit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        rounded = round_to_currency(self.amount, self.currency)
        if rounded != self.amount or rounded.as_tuple().exponent != self.amount.as_tuple().exponent:
            object.__setattr__(self, "amount", rounded)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    def __add__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def times(self, quantity: Decimal) -> Money:
        """Multiply by a quantity, rounding the product once (the one rule)."""
        return Money(self.amount * quantity, self.currency)

    def _check_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def finite(value: Decimal | None) -> Decimal | None:
    """A field validator: `value` unless it is NaN or infinite."""
    if value is not None and not value.is_finite():
        raise ValueError("must be a finite decimal")
    return value
