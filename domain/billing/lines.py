"""Invoice lines: one priced transaction each, with where it came from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from domain.shared.model import ValueObject
from domain.shared.money import PlainDecimal


class LineKind(StrEnum):
    RECURRING = "recurring"  # a package's period
    USAGE = "usage"  # a package's usage records, summed per price and description
    CHARGE = "charge"  # a one-off (ad-hoc) charge or credit
    PENALTY = "penalty"  # a contract's early-termination fee or commitment shortfall


DEFAULT_PACKAGE_CATEGORY = "services"
DEFAULT_CHARGE_CATEGORY = "charges"


class InvoiceLine(ValueObject):
    """One priced line, with its provenance (run, source, service period, rule).

    `amount` and `tax` are already rounded to the currency's minor unit (see
    `domain.billing.pricing`); an invoice's totals are exact sums of them.
    """

    line_id: UUID
    account_id: str
    """The account the line is for (on an invoicer's invoice, one of its family)."""
    run_id: str
    source: str
    """`package:<id>`, `usage:<package id>` or `charge:<id>`."""
    description: str
    service_period_start: date
    service_period_end: date
    quantity: Decimal
    unit_amount: PlainDecimal
    amount: Decimal
    currency: str
    posting_date: date
    rule: str
    """How the amount was computed, e.g. `recurring:monthly:advance:prorated:17/31`."""
    kind: LineKind = LineKind.RECURRING
    category: str = DEFAULT_PACKAGE_CATEGORY
    tax_rate: Decimal = Decimal(0)
    """Percent, e.g. 20 for 20 %."""
    tax: Decimal = Decimal(0)
    vat_category: str | None = None
    """As its package or charge states it (UNCL 5305); None: from the rate."""
    exemption_reason: str | None = None
    original_currency: str | None = None
    """Set when the line was converted onto an invoice in another currency (an
    invoicer's): the account's own currency, amount and the rate used."""
    original_amount: Decimal | None = None
    exchange_rate: PlainDecimal | None = None
    base_currency: str | None = None
    """The owner's base currency, for reporting (None until one is set)."""
    base_amount: Decimal | None = None
