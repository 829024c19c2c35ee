"""Accounts one at a time (the HTTP API's create, change and list), through the
import's own checks and writes: an account created over HTTP is exactly an
account imported from a file of one record (`importing.import_accounts`)."""

from __future__ import annotations

from typing import Any

import orjson

from application.billing.import_document import AccountRecord, parse_import
from application.billing.importing import ImportSummary, import_accounts
from application.shared.app import Billing
from application.shared.errors import ApplicationError, InvalidInput
from domain.billing.account import Account
from domain.billing.events import AccountOpened
from domain.shared.ids import account_uuid
from infrastructure.topics import topic_of

ACCOUNT_OPENED = topic_of(AccountOpened)


class AccountExists(ApplicationError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id!r} exists already: change it instead")
        self.account_id = account_id


def open_account(billing: Billing, record: dict[str, Any], source: str) -> Account:
    """Open the account `record` describes (an import file's account record, its
    packages, charges, usage and contracts included), refusing an existing id."""
    account_id = record.get("id")
    if isinstance(account_id, str) and billing.load_many(Account, [account_uuid(account_id)]):
        raise AccountExists(account_id)
    _import_one(billing, record, source)
    return billing.get_account(str(account_id))


def change_account(
    billing: Billing, account_id: str, changes: dict[str, Any], source: str
) -> tuple[Account, ImportSummary]:
    """Change an account's details: the fields of `changes` replace the current
    ones, the others are kept (as an import of the merged record would)."""
    current = _record_of(billing.get_account(account_id))
    summary = _import_one(billing, {**current, **changes}, source)
    return billing.get_account(account_id), summary


def add_package(billing: Billing, account_id: str, package: dict[str, Any], source: str) -> Account:
    """Subscribe the account to `package` (an import file's package record), or
    revise the package of that id, as re-importing the account with it would."""
    record = {**_record_of(billing.get_account(account_id)), "packages": [package]}
    try:
        _import_one(billing, record, source)
    except InvalidInput as refused:  # located in the package, as the request wrote it
        raise refused.within("packages[0]") from None
    return billing.get_account(account_id)


def _record_of(account: Account) -> dict[str, Any]:
    """The account's own fields as an import record states them (its packages,
    buyer details and receivables terms left out: an import keeps what it omits)."""
    record: dict[str, Any] = {
        "id": account.account_id,
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "tax_rate": str(account.tax_rate),
        "bill_day": account.bill_day,
    }
    if account.invoicer is not None:
        record["invoicer"] = account.invoicer
    return record


def _import_one(billing: Billing, record: dict[str, Any], source: str) -> ImportSummary:
    try:
        document = parse_import(orjson.dumps({"accounts": [record]}), source)
        return import_accounts(billing, document, source)
    except InvalidInput as refused:  # located in the record, as the request wrote it
        raise refused.within("accounts[0]") from None


def accounts_after(billing: Billing, position: int, limit: int) -> list[tuple[int, Account]]:
    """Up to `limit` accounts opened after `position` in the event log, oldest
    first, each with its position: a stable order new accounts only extend."""
    positions = billing.queries.positions(ACCOUNT_OPENED, position, billing.queries.head(), limit)
    loaded = billing.load_many(Account, [p.originator_id for p in positions])
    return [(p.notification_id, loaded[p.originator_id]) for p in positions]


__all__ = [
    "AccountExists",
    "AccountRecord",
    "accounts_after",
    "add_package",
    "change_account",
    "open_account",
]
