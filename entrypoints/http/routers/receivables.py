"""Payments, an account's balance, and the aging of what is open.

Reads come from the receivables read model, caught up before each read (the
CLI's `account balance`, `payment list`, `ar aging`); a payment is recorded by
the command `billrun payment record` runs.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from application.receivables.payments import payment_terms, record_payment
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.presenters import balance_json, balance_of
from entrypoints.representations import recording_json

router = v1_router("receivables")

Json = dict[str, Any]


class Payment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: str = Field(min_length=1, max_length=100)
    payment_id: str = Field(min_length=1, max_length=100)
    amount: Decimal = Field(gt=0)
    received_on: date
    reference: str | None = Field(default=None, max_length=200)


@router.post("/payments", status_code=201, summary="Record a payment received")
def create_payment(book: TenantBook, payment: Payment) -> Json:
    """Allocated to the account's open invoices oldest first, the rest to its
    credit (`billrun payment record --json`)."""
    recording = record_payment(
        book.billing,
        payment.account_id,
        payment.payment_id,
        payment.amount,
        payment.received_on,
        payment.reference,
    )
    return recording_json(recording)


@router.get("/accounts/{account_id}/payments", summary="List an account's payments")
def list_payments(
    book: TenantBook, account_id: str, limit: Limit = 20, after: After = None
) -> Json:
    """`billrun payment list --account A --json`, oldest first."""
    book.billing.get_account(account_id)  # an unknown account is 404
    with book.reading() as read_side:
        rows = [row.as_json() for row in read_side.fresh_receivables().payments(account_id)]
    position = lambda row: f"{row['received_on']}\0{row['payment_id']}"  # noqa: E731
    return page_of(sorted(rows, key=position), position, after, limit, dict)


AsOf = Annotated[date | None, Query(description="Age on this day (default: today).")]


@router.get("/accounts/{account_id}/balance", summary="An account's balance")
def get_balance(book: TenantBook, account_id: str, as_of: AsOf = None) -> Json:
    """Balance, credit, open invoices and their aging (`billrun account balance --json`)."""
    day = as_of or book.billing.clock().date()
    with book.reading():
        balance = balance_of(book.runtime, account_id, day)
    terms = payment_terms(book.billing, account_id)
    return balance_json(balance, terms.days, terms.source)


@router.get("/aging", summary="Receivables aging across accounts")
def get_aging(book: TenantBook, as_of: AsOf = None) -> Json:
    """Per account and per currency, by days past due (`billrun ar aging --json`)."""
    day = as_of or book.billing.clock().date()
    with book.reading() as read_side:
        report: Json = read_side.fresh_receivables().aging(day).as_json()
    return report
