"""What an account is billed for: the terms of its packages, usage and charges,
and what a run bills of them (`BillingScope`). Values carried by billing events."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import field_validator

from domain.billing.lines import DEFAULT_CHARGE_CATEGORY, DEFAULT_PACKAGE_CATEGORY
from domain.shared.model import ValueObject
from domain.shared.money import finite
from domain.shared.periods import Frequency, Timing


class PackageTerms(ValueObject):
    """What an account subscribed to: a recurring charge on a schedule."""

    package_id: str
    description: str
    amount: Decimal
    frequency: Frequency
    timing: Timing
    start_date: date
    end_date: date | None = None
    anchor_date: date | None = None
    """The date the schedule counts from; default the start date. An anchor
    before the start (e.g. the 1st of the month for a package starting on the
    15th) aligns the package to a bill day and makes its first period partial."""
    category: str = DEFAULT_PACKAGE_CATEGORY
    tax_rate: Decimal | None = None
    """Percent; None: the account's rate."""
    usage_rate: Decimal | None = None
    """Price per unit of usage recorded without a price of its own."""
    vat_category: str | None = None
    """The UNCL 5305 VAT category of its lines (S, Z, E, AE, K, G, O); None: from
    the rate (S above 0 %, Z at 0 %). Only S is taxed: the others need a 0 % rate."""
    exemption_reason: str | None = None
    """Why the lines are not taxed (BT-120), for E (required) and the others
    (default: the category's standard wording)."""

    _check = field_validator("amount", "tax_rate", "usage_rate")(finite)

    @property
    def anchor(self) -> date:
        return self.start_date if self.anchor_date is None else self.anchor_date


class UsageRecord(ValueObject):
    """A quantity of a package's service used on one day, priced when recorded."""

    usage_id: str
    package_id: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    occurred_on: date

    _check = field_validator("quantity", "unit_price")(finite)


class ChargeTerms(ValueObject):
    """A one-off charge (or, negative, a credit), billed once on or after its date."""

    charge_id: str
    description: str
    amount: Decimal
    charge_date: date
    category: str = DEFAULT_CHARGE_CATEGORY
    tax_rate: Decimal | None = None
    """Percent; None: the account's rate."""
    vat_category: str | None = None
    """The UNCL 5305 VAT category of its lines (S, Z, E, AE, K, G, O); None: from
    the rate (S above 0 %, Z at 0 %). Only S is taxed: the others need a 0 % rate."""
    exemption_reason: str | None = None
    """Why the lines are not taxed (BT-120), for E (required) and the others
    (default: the category's standard wording)."""

    _check = field_validator("amount", "tax_rate")(finite)


class BillingScope(ValueObject):
    """What a run bills (its settings `bill_packages`, `bill_usage`, `bill_charges`,
    `run_contracts`)
    and, when `categories` is not empty, only packages and charges of those categories."""

    packages: bool = True
    usage: bool = True
    charges: bool = True
    contracts: bool = True
    categories: tuple[str, ...] = ()
    catch_up: bool = False
    """Also bill stranded package bill dates (before the window), each period its
    own line (the run setting `catch_up`)."""

    def includes(self, category: str) -> bool:
        return not self.categories or category in self.categories
