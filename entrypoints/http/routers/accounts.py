"""/v1/accounts: create, change, read and list accounts.

The representation is `billrun account show --json`'s (`account_json`); its
`version` is the ETag, and a change may name it in If-Match.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from application.billing.accounts import (
    accounts_after,
    add_package,
    change_account,
    open_account,
)
from application.billing.import_document import AccountRecord, PackageRecord
from application.receivables.payments import reactivate_account, suspend_account
from entrypoints.http.etags import check_if_match, tag
from entrypoints.http.pagination import After, Limit, decode_int_cursor, encode_cursor, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.representations import account_json, contract_json

router = v1_router("accounts")

AccountJson = dict[str, Any]


class AccountChanges(BaseModel):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    invoice_email: str | None = None
    bill_group: str | None = Field(default=None, min_length=1, max_length=100)
    tax_rate: Decimal | None = Field(default=None, ge=0, le=100)
    bill_day: int | None = Field(default=None, ge=1, le=31)


class AccountPage(BaseModel):
    items: list[AccountJson]
    next: str | None


@router.post("/accounts", status_code=201, summary="Open an account")
def create_account(
    book: TenantBook,
    response: Response,
    record: AccountRecord,
) -> AccountJson:
    """Open an account with its packages (and any charges, usage and contracts),
    as `billrun import` would from a file of this one record. An id that exists
    already is refused (409): change it with PATCH."""
    account = open_account(
        book.billing, record.model_dump(mode="json", exclude_unset=True), "request"
    )
    tag(response, account.version)
    response.headers["Location"] = f"/v1/accounts/{account.account_id}"
    return account_json(account)


@router.get("/accounts", summary="List accounts")
async def list_accounts(book: TenantBook, limit: Limit = 20, after: After = None) -> AccountPage:
    """Accounts in the order they were opened (new ones come last)."""
    position = decode_int_cursor(after)
    found = await run_in_threadpool(accounts_after, book.billing, position, limit + 1)
    chosen = found[:limit]
    more = len(found) > limit
    return AccountPage(
        items=[account_json(account) for _, account in chosen],
        next=encode_cursor(str(chosen[-1][0])) if more and chosen else None,
    )


@router.get("/accounts/{account_id}", summary="Get an account")
def get_account(book: TenantBook, account_id: str, response: Response) -> AccountJson:
    """The account and its packages (`billrun account show --json`)."""
    account = book.billing.get_account(account_id)
    tag(response, account.version)
    return account_json(account)


@router.patch("/accounts/{account_id}", summary="Change an account's details")
def update_account(
    book: TenantBook,
    account_id: str,
    changes: AccountChanges,
    request: Request,
    response: Response,
) -> AccountJson:
    """Change the name, invoice email, bill group, tax rate or bill day. With
    If-Match, refused (412) when the account changed since that version."""
    check_if_match(request, book.billing.get_account(account_id).version)
    fields = changes.model_dump(mode="json", exclude_unset=True)
    account, _ = change_account(book.billing, account_id, fields, "request")
    tag(response, account.version)
    return account_json(account)


@router.post("/accounts/{account_id}/packages", status_code=201, summary="Add a package")
def create_package(
    book: TenantBook, account_id: str, package: PackageRecord, response: Response
) -> AccountJson:
    """Subscribe the account to a package (an import file's package record); a
    package id it has already is revised as re-importing it would."""
    account = add_package(
        book.billing, account_id, package.model_dump(mode="json", exclude_unset=True), "request"
    )
    tag(response, account.version)
    return account_json(account)


@router.get("/accounts/{account_id}/contracts", summary="List an account's contracts")
def list_contracts(
    book: TenantBook, account_id: str, limit: Limit = 20, after: After = None
) -> AccountJson:
    """By id: term, spend so far, penalties billed (`billrun contract list --json`)."""
    account = book.billing.get_account(account_id)
    ordered = sorted(account.contracts.values(), key=lambda c: c.terms.contract_id)
    return page_of(
        ordered, lambda c: c.terms.contract_id, after, limit, lambda c: contract_json(account, c)
    )


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.post("/accounts/{account_id}/suspend", summary="Suspend an account")
def suspend(book: TenantBook, account_id: str, why: Reason) -> AccountJson:
    """Until reactivated by hand (a payment does not lift it); its invoices are
    held where its bill group holds a suspended account's."""
    receivables, changed = suspend_account(book.billing, account_id, why.reason)
    return {"account": account_id, "suspended": receivables.suspended, "changed": changed}


@router.post("/accounts/{account_id}/reactivate", summary="Reactivate an account")
def reactivate(book: TenantBook, account_id: str, why: Reason) -> AccountJson:
    """Lift a suspension, by hand or by dunning."""
    receivables, changed = reactivate_account(book.billing, account_id, why.reason)
    return {"account": account_id, "suspended": receivables.suspended, "changed": changed}
