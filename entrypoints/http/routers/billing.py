"""Usage, one-off charges and credits, contracts, and an account's billing settings.

Each write calls the application service `billrun usage record`, `charge add`,
`account terms|autopay|invoicer` call, and answers their `--json`. A usage
batch is one transaction of at most 1,000 records: refused whole, every problem
named by its index (`records[3]`), or recorded whole; records already recorded
with the same data count as duplicates (safe to resend).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from application.billing.invoicers import assign_invoicer
from application.billing.transactions import (
    ChargeInput,
    ContractInput,
    UsageInput,
    add_charges,
    agree_contracts,
    record_usage,
)
from application.receivables.payments import payment_terms, set_autopay, set_payment_terms
from application.runs.cancel import written_off
from domain.billing.contracts import DEFAULT_CONTRACT_CATEGORY, ContractTerms
from domain.billing.lines import DEFAULT_CHARGE_CATEGORY
from domain.billing.terms import ChargeTerms
from entrypoints.http.limits import MAX_BATCH
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.representations import charge_json, contract_json, usage_json

router = v1_router("usage and charges")

Json = dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usage(_Strict):
    account_id: str = Field(min_length=1, max_length=100)
    usage_id: str = Field(min_length=1, max_length=100, description="Unique within the account")
    package_id: str = Field(min_length=1, max_length=100)
    quantity: Decimal
    occurred_on: date
    unit_price: Decimal | None = None
    description: str | None = Field(default=None, max_length=500)

    def as_input(self, where: str) -> UsageInput:
        return UsageInput(where=where, **self.model_dump())


class UsageBatch(_Strict):
    records: list[Usage] = Field(min_length=1, max_length=MAX_BATCH)


class Summary(BaseModel):
    recorded: int
    duplicates: int
    accounts: int
    events: int


class Charge(_Strict):
    account_id: str = Field(min_length=1, max_length=100)
    charge_id: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=500)
    amount: Decimal = Field(description="Negative: a credit")
    charge_date: date
    category: str = Field(default=DEFAULT_CHARGE_CATEGORY, min_length=1, max_length=100)
    tax_rate: Decimal | None = None


class Contract(_Strict):
    account_id: str = Field(min_length=1, max_length=100)
    contract_id: str = Field(min_length=1, max_length=100)
    package_id: str | None = Field(
        default=None, max_length=100, description="None: on the whole account"
    )
    start_date: date
    term_months: int = Field(ge=1, le=600, description="The minimum term, in months")
    early_termination_fee: Decimal | None = Field(default=None, ge=0)
    minimum_spend: Decimal | None = Field(default=None, ge=0)
    description: str | None = Field(default=None, min_length=1, max_length=500)
    category: str = Field(default=DEFAULT_CONTRACT_CATEGORY, min_length=1, max_length=100)
    tax_rate: Decimal | None = None


class Terms(_Strict):
    net_days: int | None = Field(
        ge=0, le=365, description="Days from issue to due date; null: the bill group's"
    )


class AutoPay(_Strict):
    token: str | None = Field(
        max_length=200, description="The gateway's payment method token; null: off"
    )


class Invoicer(_Strict):
    invoicer: str | None = Field(
        max_length=100, description="The account whose invoices carry this one's lines"
    )


class ItemPage(BaseModel):
    items: list[Json]
    next: str | None


@router.post("/usage", status_code=201, summary="Record one usage record")
def create_usage(book: TenantBook, usage: Usage) -> Json:
    """`billrun usage record --json`: the same id with the same data records nothing."""
    summary = record_usage(book.billing, [usage.as_input("")], "request")
    account = book.billing.get_account(usage.account_id)
    return {
        "account": usage.account_id,
        "recorded": summary.recorded == 1,
        "usage": usage_json(account, account.usage[usage.usage_id]),
    }


@router.post("/usage/batches", status_code=201, summary="Record a batch of usage")
def create_usage_batch(book: TenantBook, batch: UsageBatch) -> Summary:
    """Up to 1,000 records in one transaction, all or nothing (`billrun usage
    import --json`)."""
    records = [record.as_input(f"records[{i}]") for i, record in enumerate(batch.records)]
    summary = record_usage(book.billing, records, "request")
    return Summary(
        recorded=summary.recorded,
        duplicates=summary.duplicates,
        accounts=summary.accounts,
        events=summary.events,
    )


@router.get("/accounts/{account_id}/usage", summary="List an account's usage")
def list_usage(book: TenantBook, account_id: str, limit: Limit = 20, after: After = None) -> Json:
    """By date, then id, with whether each is billed (`billrun usage list --json`)."""
    account = book.billing.get_account(account_id)
    discarded = written_off(book.billing, account).usage
    ordered = sorted(account.usage.values(), key=lambda u: (u.occurred_on, u.usage_id))
    return page_of(
        ordered,
        lambda u: f"{u.occurred_on.isoformat()}\0{u.usage_id}",
        after,
        limit,
        lambda u: usage_json(account, u, discarded.get(u.usage_id)),
    )


@router.post("/charges", status_code=201, summary="Add a one-off charge or credit")
def create_charge(book: TenantBook, charge: Charge) -> Json:
    """`billrun charge add --json`; a negative amount is a credit."""
    terms = ChargeTerms(**charge.model_dump(exclude={"account_id"}))
    summary = add_charges(book.billing, [ChargeInput("", charge.account_id, terms)], "request")
    account = book.billing.get_account(charge.account_id)
    return {
        "account": charge.account_id,
        "recorded": summary.recorded == 1,
        "charge": charge_json(account.charges[charge.charge_id], account.currency),
    }


@router.get("/accounts/{account_id}/charges", summary="List an account's charges")
def list_charges(book: TenantBook, account_id: str, limit: Limit = 20, after: After = None) -> Json:
    """By date, then id (`billrun charge list --json`)."""
    account = book.billing.get_account(account_id)
    discarded = written_off(book.billing, account).charges
    ordered = sorted(
        account.charges.values(), key=lambda c: (c.terms.charge_date, c.terms.charge_id)
    )
    return page_of(
        ordered,
        lambda c: f"{c.terms.charge_date.isoformat()}\0{c.terms.charge_id}",
        after,
        limit,
        lambda c: charge_json(c, account.currency, discarded.get(c.terms.charge_id)),
    )


@router.post("/contracts", status_code=201, summary="Agree a contract")
def create_contract(book: TenantBook, contract: Contract) -> Json:
    """On an account or one of its packages: a minimum term with an early-
    termination fee, a minimum spend, or both (`billrun contract add --json`)."""
    fields = contract.model_dump(exclude={"account_id"})
    fields["description"] = contract.description or f"Contract {contract.contract_id}"
    terms = ContractTerms(**fields)
    summary = agree_contracts(
        book.billing, [ContractInput("", contract.account_id, terms)], "request"
    )
    account = book.billing.get_account(contract.account_id)
    return {
        "account": contract.account_id,
        "recorded": summary.recorded == 1,
        "contract": contract_json(account, account.contracts[contract.contract_id]),
    }


@router.put("/accounts/{account_id}/terms", summary="Set an account's payment terms")
def put_terms(book: TenantBook, account_id: str, terms: Terms) -> Json:
    """`billrun account terms --json`: invoices already issued keep their due dates."""
    changed = set_payment_terms(book.billing, account_id, terms.net_days)
    now = payment_terms(book.billing, account_id)
    return {
        "account": account_id,
        "payment_terms": {"days": now.days, "source": now.source},
        "changed": changed,
    }


@router.put("/accounts/{account_id}/autopay", summary="Put an account on or off auto-pay")
def put_autopay(book: TenantBook, account_id: str, autopay: AutoPay) -> Json:
    """`billrun account autopay --json` (the token is never echoed)."""
    changed = set_autopay(book.billing, account_id, autopay.token)
    return {"account": account_id, "autopay": autopay.token is not None, "changed": changed}


@router.put("/accounts/{account_id}/invoicer", summary="Bill an account onto another's")
def put_invoicer(book: TenantBook, account_id: str, invoicer: Invoicer) -> Json:
    """`billrun account invoicer --json`; null: onto its own invoices again."""
    changed = assign_invoicer(book.billing, account_id, invoicer.invoicer)
    return {"account": account_id, "invoicer": invoicer.invoicer, "changed": changed > 0}
