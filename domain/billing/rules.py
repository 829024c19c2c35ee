"""What an account's terms must satisfy before it records them: the checks of
`Account`'s commands, pure, each raising `AccountError` that says what and where."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from domain.billing.contracts import ContractTerms
from domain.billing.terms import ChargeTerms, PackageTerms, UsageRecord
from domain.shared.errors import AccountError
from domain.shared.inputs import MAX_MAGNITUDE
from domain.shared.money import round_to_currency

MAX_TERM_MONTHS = 1200


def check_tax_rate(rate: Decimal, where: str) -> None:
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(100):
        raise AccountError(f"{where}: tax rate {rate} must be a percentage from 0 to 100")


VAT_CATEGORIES = ("S", "Z", "E", "AE", "K", "G", "O")
"""UNCL 5305 categories billrun states: standard, zero rated, exempt, reverse
charge, intra-community supply, export, not subject to VAT."""


def check_vat_category(
    category: str | None, reason: str | None, rate: Decimal | None, where: str
) -> None:
    """A category is stated with the rate it applies to: S taxes (above 0 %), every
    other category is at 0 %; E needs its exemption reason (EN 16931 BR-E-10)."""
    if category is None:
        if reason is not None:
            raise AccountError(f"{where}: an exemption reason without a vat_category")
        return
    if category not in VAT_CATEGORIES:
        raise AccountError(
            f"{where}: vat_category {category!r} is not one of {', '.join(VAT_CATEGORIES)}"
        )
    if rate is None:
        raise AccountError(f"{where}: vat_category {category} needs its own tax_rate")
    if (category == "S") != (rate > 0):
        needs = "a rate above 0 %" if category == "S" else "a 0 % rate"
        raise AccountError(f"{where}: vat_category {category} needs {needs}, not {rate} %")
    if category == "E" and not (reason or "").strip():
        raise AccountError(f"{where}: vat_category E (exempt) needs an exemption_reason")
    if category in ("S", "Z") and reason is not None:
        raise AccountError(f"{where}: vat_category {category} takes no exemption reason")


def check_minor_units(amount: Decimal, currency: str, what: str) -> None:
    """`what` (e.g. "package P1: amount 1.005") fits the currency's minor unit."""
    if amount != round_to_currency(amount, currency):
        raise AccountError(f"{what} has more decimals than {currency} allows")


def check_end_date(end_date: date | None, start_date: date, where: str) -> None:
    if end_date is not None and end_date < start_date:
        raise AccountError(f"{where}: end date {end_date} is before its start date {start_date}")


def check_package_terms(terms: PackageTerms, currency: str, where: str) -> None:
    """What any package's terms must satisfy, new or revised."""
    check_end_date(terms.end_date, terms.start_date, where)
    check_minor_units(terms.amount, currency, f"{where}: amount {terms.amount}")
    if terms.tax_rate is not None:
        check_tax_rate(terms.tax_rate, where)
    check_vat_category(terms.vat_category, terms.exemption_reason, terms.tax_rate, where)
    if terms.usage_rate is not None and terms.usage_rate < 0:
        raise AccountError(f"{where}: usage rate {terms.usage_rate} is negative")


def check_charge_terms(terms: ChargeTerms, currency: str) -> None:
    where = f"charge {terms.charge_id}"
    if not terms.charge_id.strip():
        raise AccountError("a charge needs a non-empty id")
    check_minor_units(terms.amount, currency, f"{where}: amount {terms.amount}")
    if terms.tax_rate is not None:
        check_tax_rate(terms.tax_rate, where)
    check_vat_category(terms.vat_category, terms.exemption_reason, terms.tax_rate, where)


def check_contract_terms(terms: ContractTerms, currency: str, where: str) -> None:
    if not 1 <= terms.term_months <= MAX_TERM_MONTHS:
        raise AccountError(
            f"{where}: a minimum term of {terms.term_months} months; "
            f"it must be 1 to {MAX_TERM_MONTHS}"
        )
    if not terms.description.strip():
        raise AccountError(f"{where}: needs a description")
    if not terms.category.strip():
        raise AccountError(f"{where}: needs a category")
    if terms.early_termination_fee is None and terms.minimum_spend is None:
        raise AccountError(f"{where}: needs an early-termination fee, a minimum spend or both")
    for name, value in (
        ("early-termination fee", terms.early_termination_fee),
        ("minimum spend", terms.minimum_spend),
    ):
        if value is None:
            continue
        if value <= 0:
            raise AccountError(f"{where}: {name} {value} must be positive")
        check_minor_units(value, currency, f"{where}: {name} {value}")
    if terms.tax_rate is not None:
        check_tax_rate(terms.tax_rate, where)


def usage_record(
    usage_id: str,
    terms: PackageTerms,
    quantity: Decimal,
    occurred_on: date,
    unit_price: Decimal | None,
    description: str | None,
) -> UsageRecord:
    """Usage of the package with `terms`, priced now (its own price, else the
    package's usage rate), or refused."""
    where = f"usage {usage_id}"
    package_id = terms.package_id
    price = terms.usage_rate if unit_price is None else unit_price
    if price is None:
        raise AccountError(
            f"{where}: no unit price given and package {package_id} has no usage rate"
        )
    if not quantity.is_finite() or not price.is_finite():
        raise AccountError(f"{where}: quantity and unit price must be finite decimals")
    if abs(quantity * price) >= MAX_MAGNITUDE:
        # Each below the input limit, their product may not be: a line amount
        # beyond it could not be converted or rounded later, parking the account.
        raise AccountError(
            f"{where}: {quantity} x {price} is beyond what billrun bills "
            "(an amount below 1000000000000, 10^12)"
        )
    if occurred_on < terms.start_date or (
        terms.end_date is not None and occurred_on > terms.end_date
    ):
        ends = "" if terms.end_date is None else f" to {terms.end_date}"
        raise AccountError(
            f"{where}: occurred on {occurred_on}, outside package {package_id} "
            f"({terms.start_date}{ends})"
        )
    return UsageRecord(
        usage_id=usage_id,
        package_id=package_id,
        description=description or terms.description,
        quantity=quantity,
        unit_price=price,
        occurred_on=occurred_on,
    )
