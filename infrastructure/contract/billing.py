"""Billing: accounts, their packages, usage and charges (one `Account` aggregate
each), public form.

Every body carries `account_id` (the operator's natural id), and `currency`
beside every amount. Billed lines carry their own account, currency and run;
`ChargeAdded` and `ContractAgreed` carry both from class version 2 on, and those
stored before get them from the aggregate's facts (its `AccountOpened`). The
account's name and invoice e-mail address are personal data that no
subscriber's purpose here needs: they are not published (docs/subscribing.md
lists what personal data is).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from infrastructure.contract.base import Amount, Currency, Facts, PublicEvent, PublicForm, plain


class AccountEvent(PublicEvent):
    account_id: str


class AccountOpenedV1(AccountEvent):
    """An account was opened (imported)."""

    ce_type = "billrun.account.opened.v1"
    currency: Currency
    bill_group: str


class BilledV1(AccountEvent):
    """Base of the billing events (not published itself)."""

    run_id: str
    currency: Currency
    amount: Amount
    """Net amount billed, in `currency`."""
    tax: Amount


class PackageBilledV1(BilledV1):
    """A bill run billed one period of a package."""

    ce_type = "billrun.account.package_billed.v1"
    package_id: str
    bill_date: date
    service_period_start: date
    service_period_end: date


class UsageBilledV1(BilledV1):
    """A bill run billed usage records of a package."""

    ce_type = "billrun.account.usage_billed.v1"
    package_id: str
    usage_count: int


class ChargeBilledV1(BilledV1):
    """A bill run billed a one-off charge."""

    ce_type = "billrun.account.charge_billed.v1"
    charge_id: str


class ChargeAddedV1(AccountEvent):
    """A one-off charge was added to the account, to be billed by the next run."""

    ce_type = "billrun.account.charge_added.v1"
    charge_id: str
    description: str
    currency: Currency
    amount: Amount
    charge_date: date


class ContractAgreedV1(AccountEvent):
    """The account agreed a contract (term, minimum spend, early termination fee)."""

    ce_type = "billrun.account.contract_agreed.v1"
    contract_id: str
    package_id: str | None
    start_date: date
    term_months: int
    currency: Currency
    minimum_spend: Amount | None
    early_termination_fee: Amount | None


def opened_facts(payload: dict[str, Any]) -> Facts:
    return {"account_id": payload["account_id"], "currency": payload["currency"]}


def _opened(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {"account_id": p["account_id"], "currency": p["currency"], "bill_group": p["bill_group"]}


def _line_sum(p: dict[str, Any], lines: list[dict[str, Any]], f: Facts) -> dict[str, Any]:
    from decimal import Decimal

    first = lines[0] if lines else {}
    return {
        "account_id": first.get("account_id", f.get("account_id")),
        "run_id": p["run_id"],
        "currency": first.get("currency", f.get("currency")),
        "amount": plain(str(sum((Decimal(line["amount"]) for line in lines), Decimal(0))))
        if len(lines) != 1
        else plain(first["amount"]),
        "tax": plain(str(sum((Decimal(line.get("tax", "0")) for line in lines), Decimal(0))))
        if len(lines) != 1
        else plain(first.get("tax", "0")),
    }


def _package(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    line = p["line"]
    return {
        **_line_sum(p, [line], f),
        "package_id": p["package_id"],
        "bill_date": p["bill_date"],
        "service_period_start": line["service_period_start"],
        "service_period_end": line["service_period_end"],
    }


def _usage(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_line_sum(p, list(p["lines"]), f),
        "package_id": p["package_id"],
        "usage_count": len(p["usage_ids"]),
    }


def _charge_billed(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_line_sum(p, [p["line"]], f), "charge_id": p["charge_id"]}


# ChargeAdded, ContractAgreed: the event's own account and currency (stored from
# class version 2 on), else the facts (older events).


def _charge_added(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    charge = p["charge"]
    return {
        "account_id": p.get("account_id") or f.get("account_id"),
        "charge_id": charge["charge_id"],
        "description": charge["description"],
        "currency": p.get("currency") or f.get("currency"),
        "amount": plain(charge["amount"]),
        "charge_date": charge["charge_date"],
    }


def _contract(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    terms = p["terms"]
    return {
        "account_id": p.get("account_id") or f.get("account_id"),
        "contract_id": terms["contract_id"],
        "package_id": terms.get("package_id"),
        "start_date": terms["start_date"],
        "term_months": terms["term_months"],
        "currency": p.get("currency") or f.get("currency"),
        "minimum_spend": plain(terms.get("minimum_spend")),
        "early_termination_fee": plain(terms.get("early_termination_fee")),
    }


FORMS = (
    PublicForm("AccountOpened", AccountOpenedV1, _opened, "account_id"),
    PublicForm("PackageBilled", PackageBilledV1, _package, "account_id"),
    PublicForm("UsageBilled", UsageBilledV1, _usage, "account_id"),
    PublicForm("ChargeBilled", ChargeBilledV1, _charge_billed, "account_id"),
    PublicForm("ChargeAdded", ChargeAddedV1, _charge_added, "account_id"),
    PublicForm("ContractAgreed", ContractAgreedV1, _contract, "account_id"),
)

OPENERS = {"AccountOpened": opened_facts}

SELF_CONTAINED_FROM_V2 = frozenset({"ChargeAdded", "ContractAgreed"})
"""Stored as class version 2 or later, these carry their account id and currency."""
