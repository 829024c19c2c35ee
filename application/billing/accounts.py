"""Accounts one at a time (the HTTP API's create, change and list), through the
import's own checks and writes: an account created over HTTP is exactly an
account imported from a file of one record (`importing.import_accounts`)."""

from __future__ import annotations

from typing import Any

import orjson

from application.billing.import_document import AccountRecord, parse_import
from application.billing.importing import ImportSummary, import_accounts
from application.shared.app import Billing
from application.shared.errors import ApplicationError, InvalidInput, Problem
from domain.billing.account import Account
from domain.billing.events import AccountOpened
from domain.shared.ids import account_uuid
from infrastructure.topics import topic_of

ACCOUNT_OPENED = topic_of(AccountOpened)
_RECORD = "accounts[0]."


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
    account = billing.get_account(account_id)
    current: dict[str, Any] = {
        "id": account.account_id,
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "tax_rate": str(account.tax_rate),
        "bill_day": account.bill_day,
    }
    if account.invoicer is not None:
        current["invoicer"] = account.invoicer
    summary = _import_one(billing, {**current, **changes}, source)
    return billing.get_account(account_id), summary


def _import_one(billing: Billing, record: dict[str, Any], source: str) -> ImportSummary:
    try:
        document = parse_import(orjson.dumps({"accounts": [record]}), source)
        return import_accounts(billing, document, source)
    except InvalidInput as refused:
        # Located in the record itself, as the request wrote it: `name`, not
        # `accounts[0].name`.
        problems = [
            Problem(p.path.removeprefix(_RECORD).removeprefix("accounts[0]"), p.message)
            for p in refused.problems
        ]
        raise InvalidInput(source, problems) from None


def accounts_after(billing: Billing, position: int, limit: int) -> list[tuple[int, Account]]:
    """Up to `limit` accounts opened after `position` in the event log, oldest
    first, each with its position: a stable order new accounts only extend."""
    positions = billing.queries.positions(ACCOUNT_OPENED, position, billing.queries.head(), limit)
    loaded = billing.load_many(Account, [p.originator_id for p in positions])
    return [(p.notification_id, loaded[p.originator_id]) for p in positions]


__all__ = ["AccountExists", "AccountRecord", "accounts_after", "change_account", "open_account"]
