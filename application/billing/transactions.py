"""Recording usage and one-off charges on accounts, all or nothing.

Both commands take a batch (a CSV file, an import file or one record from the
command line), check every item against the stored accounts in memory first,
and save only when nothing was refused: a refused batch writes nothing, and
the error names each bad item where the operator wrote it (`line 7`,
`accounts[2].charges[0]`). Both are idempotent: a usage id or charge id seen
again with the same data records nothing, so a batch cut short by a crash is
completed by importing it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import partial
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from application.shared.errors import InvalidInput, Problem
from application.shared.retrying import SAVE_ATTEMPTS
from domain.billing.account import Account
from domain.billing.contracts import ContractTerms
from domain.billing.terms import ChargeTerms
from domain.shared.errors import DomainError
from domain.shared.ids import account_uuid
from domain.shared.inputs import InputRefused, check_date, check_decimal, check_text
from domain.shared.model import DomainEvent

SAVE_CHUNK = 1000
"""Accounts saved per transaction (each with all of its new records)."""


@dataclass(frozen=True)
class UsageInput:
    where: str
    """Where the operator wrote it, for error messages: `line 7`, `usage[3]`."""
    account_id: str
    usage_id: str
    package_id: str
    quantity: Decimal
    occurred_on: date
    unit_price: Decimal | None = None
    description: str | None = None


@dataclass(frozen=True)
class ChargeInput:
    where: str
    account_id: str
    terms: ChargeTerms


@dataclass(frozen=True)
class ContractInput:
    where: str
    account_id: str
    terms: ContractTerms


@dataclass(frozen=True)
class TerminationInput:
    where: str
    account_id: str
    contract_id: str
    terminated_on: date
    """The contract's last day."""


@dataclass(frozen=True)
class RecordingSummary:
    recorded: int
    duplicates: int
    """Items already recorded with the same data: nothing was written for them."""
    accounts: int
    events: int


Item = TypeVar("Item", UsageInput, ChargeInput, ContractInput, TerminationInput)


def record_usage(billing: Billing, records: Sequence[UsageInput], source: str) -> RecordingSummary:
    def apply(account: Account, record: UsageInput) -> bool:
        return account.record_usage(
            record.usage_id,
            record.package_id,
            record.quantity,
            record.occurred_on,
            billing.clock(),
            unit_price=record.unit_price,
            description=record.description,
        )

    return _record(billing, records, source, apply)


def add_charges(billing: Billing, charges: Sequence[ChargeInput], source: str) -> RecordingSummary:
    def apply(account: Account, charge: ChargeInput) -> bool:
        return account.add_charge(charge.terms, billing.clock())

    return _record(billing, charges, source, apply)


def agree_contracts(
    billing: Billing, contracts: Sequence[ContractInput], source: str
) -> RecordingSummary:
    """Agree contracts on accounts, all or nothing; the same terms again record nothing."""

    def apply(account: Account, contract: ContractInput) -> bool:
        return account.agree_contract(contract.terms, billing.clock())

    return _record(billing, contracts, source, apply)


def terminate_contracts(
    billing: Billing, terminations: Sequence[TerminationInput], source: str
) -> RecordingSummary:
    """Terminate contracts, all or nothing; the same date again records nothing.
    The contracts' packages are not changed (end them separately)."""

    def apply(account: Account, termination: TerminationInput) -> bool:
        return account.terminate_contract(
            termination.contract_id, termination.terminated_on, billing.clock()
        )

    return _record(billing, terminations, source, apply)


def _record(
    billing: Billing,
    items: Sequence[Item],
    source: str,
    apply: Callable[[Account, Item], bool],
) -> RecordingSummary:
    """Check and apply every item, then save the batch in one transaction; when
    another writer changed one of its accounts meanwhile (two batches of one
    account's usage sent at once), the whole batch is judged again from a fresh
    load: an item the other writer recorded is then a duplicate, never a second
    record."""
    for _ in range(SAVE_ATTEMPTS - 1):
        try:
            return _record_once(billing, items, source, apply)
        except RecordConflictError:
            continue
    return _record_once(billing, items, source, apply)


def _record_once(
    billing: Billing,
    items: Sequence[Item],
    source: str,
    apply: Callable[[Account, Item], bool],
) -> RecordingSummary:
    ids = list(dict.fromkeys(account_uuid(item.account_id) for item in items))
    accounts: dict[UUID, Account] = {}
    for some_ids in _chunks(ids, SAVE_CHUNK):
        accounts.update(billing.load_many(Account, some_ids))
    problems: list[Problem] = []
    recorded = duplicates = 0
    for item in items:
        refused = _input_problems(item)
        if refused:
            problems.extend(Problem(item.where, message) for message in refused)
            continue
        account = accounts.get(account_uuid(item.account_id))
        if account is None:
            problems.append(Problem(item.where, f"no account {item.account_id!r}"))
            continue
        try:
            if apply(account, item):
                recorded += 1
            else:
                duplicates += 1
        except DomainError as error:
            problems.append(Problem(item.where, str(error)))
    if problems:
        raise InvalidInput(source, problems)
    touched = [a for a in accounts.values() if a.has_pending_events]
    # One transaction for the whole batch: a file is one unit, so a failure while
    # saving (the database gone) leaves none of it rather than its first chunks.
    pending: list[DomainEvent] = [e for a in touched for e in a.collect_events()]
    if pending:
        billing.save(*pending)
    return RecordingSummary(recorded, duplicates, len(touched), len(pending))


def _input_problems(item: UsageInput | ChargeInput | ContractInput | TerminationInput) -> list[str]:
    """The rules every input path shares (domain/shared/inputs.py), checked here too so a
    command called by any entry point (CLI, HTTP API) cannot store what a later run
    or PostgreSQL could not read back."""
    ids: dict[str, str | None] = {"account_id": item.account_id}
    texts: dict[str, str | None] = {}
    numbers: dict[str, Decimal | None] = {}
    days: dict[str, date | None] = {}
    if isinstance(item, UsageInput):
        ids |= {"usage_id": item.usage_id, "package_id": item.package_id}
        texts["description"] = item.description
        numbers |= {"quantity": item.quantity, "unit_price": item.unit_price}
        days["occurred_on"] = item.occurred_on
    elif isinstance(item, ChargeInput):
        charge = item.terms
        ids |= {"id": charge.charge_id, "category": charge.category}
        texts["description"] = charge.description
        numbers |= {"amount": charge.amount, "tax_rate": charge.tax_rate}
        days["date"] = charge.charge_date
    elif isinstance(item, ContractInput):
        contract = item.terms
        ids |= {"id": contract.contract_id, "package_id": contract.package_id}
        ids["category"] = contract.category
        texts["description"] = contract.description
        numbers |= {
            "early_termination_fee": contract.early_termination_fee,
            "minimum_spend": contract.minimum_spend,
            "tax_rate": contract.tax_rate,
        }
        days["start_date"] = contract.start_date
    else:
        ids["contract_id"] = item.contract_id
        days["terminated_on"] = item.terminated_on
    problems: list[str] = []

    def refused(field: str, check: Callable[[], object]) -> None:
        try:
            check()
        except InputRefused as error:
            problems.append(f"{field}: {error}")

    for field, text in ids.items():
        if text is not None:
            refused(field, partial(check_text, text, identifier=True))
    for field, text in texts.items():
        if text is not None:
            refused(field, partial(check_text, text))
    for field, number in numbers.items():
        if number is not None:
            refused(field, partial(check_decimal, number))
    for field, day in days.items():
        if day is not None:
            refused(field, partial(check_date, day))
    return problems


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
