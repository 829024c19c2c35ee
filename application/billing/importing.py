"""Importing accounts: opening or updating the accounts of a validated import
document (`application/billing/import_document.py` parses and checks the file),
with their packages, charges, usage, contracts, receivables terms, bill groups
and exchange rates, all in one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from application.billing.import_document import (
    AccountRecord,
    BillGroupRecord,
    ChargeRecord,
    EntityRecord,
    ImportDocument,
)
from application.billing.invoicers import change_invoicer
from application.shared.app import Billing
from application.shared.errors import InvalidInput, Problem
from domain.billing.account import Account
from domain.billing.buyer import BuyerDetails
from domain.billing.contracts import ContractTerms
from domain.billing.events import (
    AccountOpened,
    ChargeAdded,
    ContractAgreed,
    PackageSubscribed,
    UsageRecorded,
)
from domain.billing.terms import ChargeTerms, PackageTerms
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.entities import IssuingEntity
from domain.invoicing.entity_details import EntityDetails
from domain.receivables.receivables import Receivables, receivables_uuid
from domain.shared.errors import DomainError
from domain.shared.ids import account_uuid, bill_group_uuid, entity_uuid
from domain.shared.model import Aggregate, DomainEvent

IMPORT_CHUNK = 1000
_AR_FIELDS = frozenset({"payment_terms_days", "autopay_token"})
"""An account record's fields that go to its receivables."""


@dataclass(frozen=True)
class ImportSummary:
    accounts_opened: int
    accounts_changed: int
    accounts_unchanged: int
    packages_added: int
    charges_added: int
    usage_recorded: int
    contracts_agreed: int
    events: int
    bill_groups_added: int = 0
    """Bill groups configured for the first time by this import."""
    bill_groups_changed: int = 0
    """Bill groups whose settings this import changed (the same again: 0)."""
    entities_added: int = 0
    """Issuing entities recorded for the first time by this import."""
    entities_changed: int = 0
    """Issuing entities whose details this import changed (the same again: 0)."""


def import_accounts(billing: Billing, document: ImportDocument, source: str) -> ImportSummary:
    """Open or update the accounts of a validated import document, with their
    tax rates, packages, one-off charges and usage records, and their payment
    terms and auto-pay (on their receivables, saved with them).

    Every record is checked against the stored accounts before anything is
    saved (changes the event history forbids, usage naming a package the
    account does not have, a charge or usage id imported before with other
    data: each refused with its path), so a refused import writes nothing.
    Everything is then saved in one transaction: the file is written whole or
    not at all. Importing is idempotent (charges and usage already imported,
    billed or not, are left as they are), so importing it again is harmless.
    """
    problems: list[Problem] = []
    for chunk in _chunks(list(enumerate(document.accounts)), IMPORT_CHUNK):
        _, chunk_problems = _apply_import_chunk(billing, chunk)
        problems.extend(chunk_problems)
    problems.extend(_family_problems(billing, document))
    problems.extend(_entity_problems(billing, document))
    if problems:
        raise InvalidInput(source, problems)
    # The whole file is saved in one transaction: a file is one unit, all of it
    # or none of it, whatever its size and however the save fails (the events
    # of every account are held until then, about 2 KB an account).
    group_events, groups_added, groups_changed = _configure_bill_groups(
        billing, document.bill_groups
    )
    entity_events, entities_added, entities_changed = _configure_entities(
        billing, document.entities
    )
    pending: list[DomainEvent] = [*entity_events, *group_events]
    pending.extend(_rate_events(billing, document))
    opened = changed = unchanged = packages = charges = usage = contracts = 0
    imported: dict[str, Account] = {}
    for chunk in _chunks(list(enumerate(document.accounts)), IMPORT_CHUNK):
        accounts, _ = _apply_import_chunk(billing, chunk)
        terms = _apply_receivables_terms(billing, [record for _, record in chunk])
        for account in accounts:
            imported[account.account_id] = account
            new_events = account.collect_events()
            # Saved with the account's events, in the file's one transaction.
            pending.extend(terms.get(account.account_id, []))
            if not new_events:
                if account.account_id in terms:
                    changed += 1
                else:
                    unchanged += 1
                continue
            opened += isinstance(new_events[0], AccountOpened)
            changed += not isinstance(new_events[0], AccountOpened)
            packages += sum(isinstance(e, PackageSubscribed) for e in new_events)
            charges += sum(isinstance(e, ChargeAdded) for e in new_events)
            usage += sum(isinstance(e, UsageRecorded) for e in new_events)
            contracts += sum(isinstance(e, ContractAgreed) for e in new_events)
            pending.extend(new_events)

    # Families last, once every account of the file is at hand (in memory: the
    # file's own accounts are not saved yet); each change touches the member and
    # its old and new invoicers.
    def account_of(account_id: str) -> Account:
        if account_id not in imported:
            imported[account_id] = billing.get_account(account_id)
        return imported[account_id]

    family: dict[str, Account] = {}
    family_at: datetime | None = None  # the clock is read only for a change
    for record in document.accounts:
        member = imported[record.id]
        if member.invoicer == record.invoicer:
            continue
        family_at = family_at or billing.clock()
        for account in change_invoicer(member, record.invoicer, account_of, family_at):
            family[account.account_id] = account
    for account in family.values():
        pending.extend(account.collect_events())
    if pending:
        billing.save(*pending)
    events = len(pending)
    return ImportSummary(
        opened, changed, unchanged, packages, charges, usage, contracts, events,
        groups_added, groups_changed, entities_added, entities_changed,
    )  # fmt: skip


def _apply_receivables_terms(
    billing: Billing, records: list[AccountRecord]
) -> dict[str, list[DomainEvent]]:
    """The accounts' payment terms and auto-pay, on their receivables (opened for
    an account that states either); the new events by account id, none when the
    receivables already say the same.

    Only what a record states: a field left out of the file leaves the stored
    terms or token as they are (they may have been set by `billrun account`);
    `null` clears them."""
    stated = [r for r in records if r.model_fields_set & _AR_FIELDS]
    if not stated:
        return {}
    now = billing.clock()
    stored = billing.load_many(Receivables, [receivables_uuid(r.id) for r in stated])
    changes: dict[str, list[DomainEvent]] = {}
    for record in stated:
        receivables = stored.get(receivables_uuid(record.id))
        if receivables is None:
            if record.payment_terms_days is None and record.autopay_token is None:
                continue  # nothing to clear: no receivables opened for it
            receivables = Receivables.open(record.id, record.currency, now)
        if "payment_terms_days" in record.model_fields_set:
            receivables.set_payment_terms(record.payment_terms_days, now)
        if "autopay_token" in record.model_fields_set:
            receivables.set_autopay(record.autopay_token, now)
        new_events = receivables.collect_events()
        if new_events:
            changes[record.id] = list(new_events)
    return changes


def _family_problems(billing: Billing, document: ImportDocument) -> list[Problem]:
    """Invoicers named by the file but not in it must be stored accounts billed onto
    their own invoices; a stored invoicer with members cannot become a member."""
    in_file = {record.id: record.invoicer for record in document.accounts}
    named = {r.invoicer for r in document.accounts if r.invoicer} - set(in_file)
    stored = billing.load_many(
        Account,
        [account_uuid(a) for a in sorted(named | {r.id for r in document.accounts if r.invoicer})],
    )
    problems: list[Problem] = []
    for index, record in enumerate(document.accounts):
        if record.invoicer is None:
            continue
        where = f"accounts[{index}].invoicer"
        if record.invoicer in named:
            invoicer = stored.get(account_uuid(record.invoicer))
            if invoicer is None:
                problems.append(Problem(where, f"no account {record.invoicer!r}"))
            elif invoicer.invoicer is not None:
                problems.append(
                    Problem(
                        where,
                        f"{record.invoicer} is itself billed onto {invoicer.invoicer}'s "
                        "invoices; an invoicer has no invoicer (one level)",
                    )
                )
        member = stored.get(account_uuid(record.id))
        staying = [
            m for m in (member.members if member else []) if in_file.get(m, record.id) == record.id
        ]
        if staying:
            problems.append(
                Problem(
                    where,
                    f"{record.id} is the invoicer of {', '.join(staying)}; it cannot be "
                    "billed onto another account's invoices",
                )
            )
    return problems


def _entity_problems(billing: Billing, document: ImportDocument) -> list[Problem]:
    """Bill groups naming an issuing entity neither in the file nor recorded before."""
    in_file = {entity.id for entity in document.entities}
    named = {g.issuing_entity for g in document.bill_groups if g.issuing_entity} - in_file
    known = {
        entity.entity_id
        for entity in billing.load_many(IssuingEntity, [entity_uuid(e) for e in named]).values()
    }
    return [
        Problem(
            f"bill_groups[{index}].issuing_entity",
            f"no issuing entity {group.issuing_entity!r} (add it under entities, or with "
            "`billrun entity add`)",
        )
        for index, group in enumerate(document.bill_groups)
        if group.issuing_entity in named - known
    ]


ConfiguredT = TypeVar("ConfiguredT", bound=Aggregate)


def _configure_each(
    billing: Billing,
    kind: type[ConfiguredT],
    ids: list[UUID],
    create: Callable[[int], ConfiguredT],
    configure: Callable[[int, ConfiguredT], None],
) -> tuple[list[DomainEvent], int, int]:
    """Load the aggregates of `ids` (creating the missing with `create`), configure
    each: their new events, and how many are new and how many changed."""
    existing = billing.load_many(kind, ids)
    pending: list[DomainEvent] = []
    added = changed = 0
    for index, aggregate_id in enumerate(ids):
        stored = existing.get(aggregate_id)
        aggregate = stored or create(index)
        configure(index, aggregate)
        new_events = aggregate.collect_events()
        if new_events:
            added += stored is None
            changed += stored is not None
        pending.extend(new_events)
    return pending, added, changed


def _configure_entities(
    billing: Billing, records: list[EntityRecord]
) -> tuple[list[DomainEvent], int, int]:
    """The entities' new events, and how many are new and how many changed."""
    now = billing.clock()

    def configure(index: int, entity: IssuingEntity) -> None:
        entity.configure(
            EntityDetails.model_validate(records[index].model_dump(exclude={"id"})), now
        )

    return _configure_each(
        billing,
        IssuingEntity,
        [entity_uuid(r.id) for r in records],
        lambda index: IssuingEntity.create(records[index].id),
        configure,
    )


def _rate_events(billing: Billing, document: ImportDocument) -> list[DomainEvent]:
    """The file's exchange rates and base currency, not saved; the same again: none."""
    book = billing.get_rate_book()
    now = billing.clock()
    for rate in document.exchange_rates:
        book.set_rate(rate.base, rate.quote, rate.rate, rate.date, now)
    if document.base_currency is not None:
        book.set_base_currency(document.base_currency, now)
    return list(book.collect_events())


def _configure_bill_groups(
    billing: Billing, records: list[BillGroupRecord]
) -> tuple[list[DomainEvent], int, int]:
    """The groups' new events, and how many groups are new and how many changed."""
    now = billing.clock()

    def configure(index: int, group: BillGroup) -> None:
        record = records[index]
        group.configure(
            record.delivery,
            record.email_subject,
            record.email_template,
            record.first_invoice_email_template,
            now,
            close_type=record.close_type,
            zero_invoices=record.zero_invoices,
            quarantine_above=record.quarantine_above,
            reject_negative=record.reject_negative,
            quarantine_without_email=record.quarantine_without_email,
            payment_terms_days=record.payment_terms_days,
            dunning=record.dunning.rules() if record.dunning is not None else None,
            suspended_billing=record.suspended_billing,
            issuing_entity=record.issuing_entity,
        )

    return _configure_each(
        billing,
        BillGroup,
        [bill_group_uuid(r.id) for r in records],
        lambda index: BillGroup.create(records[index].id),
        configure,
    )


def _apply_import_chunk(
    billing: Billing, chunk: list[tuple[int, AccountRecord]]
) -> tuple[list[Account], list[Problem]]:
    now = billing.clock()
    existing = billing.load_many(Account, [account_uuid(r.id) for _, r in chunk])
    accounts: list[Account] = []
    problems: list[Problem] = []
    for index, record in chunk:
        where = f"accounts[{index}]"
        account = existing.get(account_uuid(record.id))
        try:
            if account is None:
                account = Account.open(
                    record.id,
                    record.name,
                    record.currency,
                    record.invoice_email,
                    record.bill_group,
                    now,
                    tax_rate=record.tax_rate,
                )
            elif account.currency != record.currency:
                problems.append(
                    Problem(
                        f"{where}.currency",
                        f"account {record.id} bills in {account.currency}; "
                        f"its currency cannot change to {record.currency}",
                    )
                )
                continue
            else:
                account.change_details(
                    record.name,
                    record.invoice_email,
                    record.bill_group,
                    now,
                    tax_rate=record.tax_rate,
                )
            account.set_bill_day(record.bill_day, now)
            account.set_buyer_details(buyer_details(account.buyer, record), now)
            package_problems, refused = _apply_packages(account, record, where, now)
            problems.extend(package_problems)
            problems.extend(_apply_charges(account, record, where, now))
            problems.extend(_apply_contracts(account, record, where, now))
            problems.extend(_apply_usage(account, record, where, now, refused))
        except DomainError as error:
            problems.append(Problem(where, str(error)))
            continue
        accounts.append(account)
    return accounts, problems


def _apply_packages(
    account: Account, record: AccountRecord, where: str, now: datetime
) -> tuple[list[Problem], set[str]]:
    """Subscribe new packages and revise known ones; returns the problems and the
    ids of the packages refused (their usage is not checked, to avoid echoes)."""
    problems: list[Problem] = []
    refused: set[str] = set()
    for p, package in enumerate(record.packages):
        at = f"{where}.packages[{p}]"
        current = account.packages.get(package.id)
        anchor_date = package.anchor_date
        if current is not None and package.anchor == current.terms.anchor:
            # The same schedule however it is written (no anchor_date, or the
            # start date as anchor_date): keep it as stored, so it is no change.
            anchor_date = current.terms.anchor_date
        terms = PackageTerms(
            package_id=package.id,
            description=package.description,
            amount=package.amount,
            frequency=package.frequency,
            timing=package.timing,
            start_date=package.start_date,
            end_date=package.end_date,
            anchor_date=anchor_date,
            category=package.category,
            tax_rate=package.tax_rate,
            usage_rate=package.usage_rate,
            vat_category=package.vat_category,
            exemption_reason=package.exemption_reason,
        )
        try:
            if current is None:
                account.subscribe(terms, package.next_bill_date, now)
                continue
            schedule = _schedule_problems(current.terms, terms, at)
            if schedule:
                problems.extend(schedule)
                refused.add(package.id)
                continue
            account.revise_package(terms, now)
        except DomainError as error:
            problems.append(Problem(at, str(error)))
            refused.add(package.id)
    return problems, refused


_SCHEDULE = (
    ("frequency", "frequency"),
    ("timing", "timing"),
    ("start_date", "start_date"),
    ("anchor", "anchor_date"),
)
"""What the history fixes: (attribute of the terms, field in the file)."""


def _schedule_problems(current: PackageTerms, terms: PackageTerms, at: str) -> list[Problem]:
    problems: list[Problem] = []
    for attribute, field in _SCHEDULE:
        if attribute == "anchor" and current.anchor_date is None and terms.anchor_date is None:
            continue  # both anchored at their start dates: a start_date problem, if any
        old, new = getattr(current, attribute), getattr(terms, attribute)
        if old != new:
            problems.append(
                Problem(
                    f"{at}.{field}", f"cannot change from {old} to {new}: add a new package instead"
                )
            )
    return problems


def _apply_charges(
    account: Account, record: AccountRecord, where: str, now: datetime
) -> list[Problem]:
    problems: list[Problem] = []
    for c, charge in enumerate(record.charges):
        at = f"{where}.charges[{c}]"
        terms = ChargeTerms(
            charge_id=charge.id,
            description=charge.description,
            amount=charge.amount,
            charge_date=charge.date,
            category=charge.category,
            tax_rate=charge.tax_rate,
            vat_category=charge.vat_category,
            exemption_reason=charge.exemption_reason,
        )
        known = account.charges.get(charge.id)
        if known is not None:
            # Imported before (and perhaps billed): the same charge is left as it
            # is; a different one under the same id is refused, field by field.
            problems.extend(_charge_changes(known.terms, charge, at))
            continue
        try:
            account.add_charge(terms, now)
        except DomainError as error:
            problems.append(Problem(at, str(error)))
    return problems


def _apply_contracts(
    account: Account, record: AccountRecord, where: str, now: datetime
) -> list[Problem]:
    """Agree the file's contracts (the same terms again: nothing) and record their
    terminations; the domain refuses other terms under a known id."""
    problems: list[Problem] = []
    for c, contract in enumerate(record.contracts):
        at = f"{where}.contracts[{c}]"
        terms = ContractTerms(
            contract_id=contract.id,
            package_id=contract.package_id,
            start_date=contract.start_date,
            term_months=contract.term_months,
            early_termination_fee=contract.early_termination_fee,
            minimum_spend=contract.minimum_spend,
            description=contract.description,
            category=contract.category,
            tax_rate=contract.tax_rate,
        )
        try:
            account.agree_contract(terms, now)
            if contract.terminated_on is not None:
                account.terminate_contract(contract.id, contract.terminated_on, now)
        except DomainError as error:
            problems.append(Problem(at, str(error)))
    return problems


def _charge_changes(known: ChargeTerms, charge: ChargeRecord, at: str) -> list[Problem]:
    fields = (
        ("description", known.description, charge.description),
        ("amount", known.amount, charge.amount),
        ("date", known.charge_date, charge.date),
        ("category", known.category, charge.category),
        ("tax_rate", known.tax_rate, charge.tax_rate),
    )
    return [
        Problem(
            f"{at}.{field}",
            f"charge {json.dumps(charge.id)} was imported with {field} {_shown(old)}; "
            "an imported charge cannot change (add a correcting charge or credit "
            "under a new id)",
        )
        for field, old, new in fields
        if old != new
    ]


def _apply_usage(
    account: Account, record: AccountRecord, where: str, now: datetime, refused: set[str]
) -> list[Problem]:
    problems: list[Problem] = []
    for u, usage in enumerate(record.usage):
        at = f"{where}.usage[{u}]"
        if usage.package_id in refused:
            continue
        known = account.usage.get(usage.id)
        if known is not None:
            # Recorded before, priced then: compare what the file says. A unit
            # price or description left out of the file took the package's at
            # the time, which a later revision of the package does not change.
            changes = [
                (field, old)
                for field, old, new in (
                    ("package_id", known.package_id, usage.package_id),
                    ("quantity", known.quantity, usage.quantity),
                    ("occurred_on", known.occurred_on, usage.occurred_on),
                    ("unit_price", known.unit_price, usage.unit_price),
                    ("description", known.description, usage.description),
                )
                if new is not None and old != new
            ]
            problems.extend(
                Problem(
                    f"{at}.{field}",
                    f"usage {json.dumps(usage.id)} was recorded with {field} {_shown(old)}; "
                    "recorded usage cannot change (record the difference under a new id)",
                )
                for field, old in changes
            )
            continue
        if usage.package_id not in account.packages:
            problems.append(
                Problem(
                    f"{at}.package_id",
                    f"account {account.account_id} has no package "
                    f"{json.dumps(usage.package_id)}, in this file or imported before",
                )
            )
            continue
        try:
            account.record_usage(
                usage.id,
                usage.package_id,
                usage.quantity,
                usage.occurred_on,
                now,
                unit_price=usage.unit_price,
                description=usage.description,
            )
        except DomainError as error:
            problems.append(Problem(at, str(error)))
    return problems


def _shown(value: object) -> str:
    """A stored value as the file would say it: decimals quoted, none as none."""
    if value is None:
        return "none"
    if isinstance(value, Decimal | str):
        return json.dumps(str(value))
    return str(value)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


BUYER_FIELDS = frozenset({"address", "vat_id", "electronic_address"})


def buyer_details(current: BuyerDetails, record: AccountRecord) -> BuyerDetails:
    """The account's buyer details after `record`: each of address, VAT id and
    electronic address as the record states it, or as it is when left out."""
    given = record.model_fields_set & BUYER_FIELDS
    if not given:
        return current
    update: dict[str, str | None] = {}
    if "address" in given:
        address = record.address
        update |= {
            "street": None if address is None else address.street,
            "city": None if address is None else address.city,
            "postal_code": None if address is None else address.postal_code,
            "country_code": None if address is None else address.country,
        }
    if "vat_id" in given:
        update["vat_id"] = record.vat_id
    if "electronic_address" in given:
        endpoint = record.electronic_address
        update["endpoint_scheme"] = None if endpoint is None else endpoint.scheme
        update["endpoint_id"] = None if endpoint is None else endpoint.id
    return current.model_copy(update=update)


def change_buyer(
    billing: Billing, account_id: str, update: dict[str, str | None]
) -> tuple[BuyerDetails, bool]:
    """Change some of the account's buyer details (`BuyerDetails` field -> value,
    None clears); (the details now, whether they changed). AccountNotFound, or
    AccountError for incoherent details (nothing recorded)."""
    account = billing.get_account(account_id)
    details = account.buyer.model_copy(update=update)
    if details == account.buyer:
        return details, False
    account.set_buyer_details(details, billing.clock())
    billing.save(account)
    return details, True
