"""The Billing application: the commands operators run, and loading aggregates."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import RecordConflictError, Recording
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import Environment, EnvType

from application.clock import Clock, system_clock
from application.errors import (
    AccountNotFound,
    InvalidInput,
    InvoiceNotFound,
    Problem,
    RunNotFound,
)
from application.import_document import (
    AccountRecord,
    BillGroupRecord,
    ChargeRecord,
    ImportDocument,
)
from application.invoicers import change_invoicer
from application.ports import Seller
from domain.account import (
    Account,
    AccountDetailsChanged,
    AccountOpened,
    ChargeAdded,
    ChargeTerms,
    ContractAgreed,
    PackageSubscribed,
    PackageTerms,
    UsageRecorded,
)
from domain.bill_group import BillGroup, BillGroupConfigured
from domain.bill_run import BillRun, RunOrigin, RunSettings, Selection
from domain.contracts import ContractTerms
from domain.errors import DomainError, RunAlreadyScheduled
from domain.exchange_rates import EXCHANGE_RATE_BOOK_ID, ExchangeRateBook
from domain.ids import INVOICE_NUMBER_SEQUENCE_ID, account_uuid, bill_group_uuid, run_uuid
from domain.invoice import Invoice
from domain.invoice_numbers import InvoiceNumberSequence
from domain.model import Aggregate, DomainEvent
from domain.periods import Period
from domain.receivables import Receivables, receivables_uuid
from infrastructure.event_store import EventStoreQueries
from infrastructure.settings import DEFAULT_PAYMENT_GATEWAY
from infrastructure.topics import topic_of

TAggregate = TypeVar("TAggregate", bound=Aggregate)
ACCOUNT_OPENED = topic_of(AccountOpened)
ACCOUNT_DETAILS_CHANGED = topic_of(AccountDetailsChanged)
BILL_GROUP_CONFIGURED = topic_of(BillGroupConfigured)

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


@dataclass(frozen=True)
class ScheduleOutcome:
    run: BillRun
    created: bool


class Billing(Application[UUID]):
    """Event-sourced billing: accounts, bill runs and invoices in one event store."""

    seller: Seller | None = None
    """Who the invoices are from, as the entrypoint configured it (BILLRUN_SELLER_*),
    for the run checks to refuse the built-in demo seller; None: not checked (the
    demo, tests and benchmarks that bill under the demo seller on purpose)."""
    payment_gateway: str = DEFAULT_PAYMENT_GATEWAY
    """The gateway runs collect through, as the entrypoint configured it
    (BILLRUN_PAYMENT_GATEWAY, `Settings.payment_gateway`): see `payment_gateway`."""

    name = "Billing"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock = system_clock) -> None:
        super().__init__(env)
        self.clock = clock
        if not isinstance(self.recorder, PostgresApplicationRecorder):
            raise TypeError("billrun stores its events in PostgreSQL (PERSISTENCE_MODULE)")
        self.queries = EventStoreQueries(self.recorder, self.mapper)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The library's configuration: exactly `env` (from `eventsourcing_environment`).

        The library's own version lays the whole process environment under it, so a
        stray CIPHER_TOPIC or POSTGRES_SCHEMA in the shell would change how events are
        stored behind billrun's back; billrun reads its configuration in one place,
        `infrastructure.settings.Settings`, and hands it down.
        """
        return Environment(name, {**type(self).env, **(env or {})})

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Save aggregates and events in one transaction.

        Same as the library's `save()`, minus its runtime `Protocol` isinstance
        checks, which cost more than the insert itself at bill-run batch sizes.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif isinstance(obj, DomainEvent):
                processing_event.events.append(obj)
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    # Loading ------------------------------------------------------------------

    def _get(
        self,
        cls: type[TAggregate],
        aggregate_id: UUID,
        version: int | None = None,
        as_of: datetime | None = None,
    ) -> TAggregate:
        """An aggregate now, at a version, or as it was at an instant (time travel)."""
        if as_of is None:
            aggregate: TAggregate = self.repository.get(
                aggregate_id, version=version, projector_func=cls.project
            )
            return aggregate
        past = cls.project(
            None,
            (
                event
                for event in _as_domain_events(self.events.get(aggregate_id, lte=version))
                if event.timestamp <= as_of
            ),
        )
        if past is None:
            raise AggregateNotFoundError(aggregate_id)
        return past

    def get_account(
        self, account_id: str, version: int | None = None, as_of: datetime | None = None
    ) -> Account:
        try:
            return self._get(Account, account_uuid(account_id), version, as_of)
        except AggregateNotFoundError:
            raise AccountNotFound(account_id) from None

    def get_run(
        self, run_id: str, version: int | None = None, as_of: datetime | None = None
    ) -> BillRun:
        try:
            return self._get(BillRun, run_uuid(run_id), version, as_of)
        except AggregateNotFoundError:
            raise RunNotFound(run_id) from None

    def get_invoice(
        self, invoice_id: UUID, version: int | None = None, as_of: datetime | None = None
    ) -> Invoice:
        try:
            return self._get(Invoice, invoice_id, version, as_of)
        except AggregateNotFoundError:
            raise InvoiceNotFound(str(invoice_id)) from None

    def get_invoice_sequence(self) -> InvoiceNumberSequence:
        try:
            return self._get(InvoiceNumberSequence, INVOICE_NUMBER_SEQUENCE_ID)
        except AggregateNotFoundError:
            return InvoiceNumberSequence()

    def get_rate_book(self, as_of: datetime | None = None) -> ExchangeRateBook:
        """The exchange rates and base currency (empty until a rate is recorded)."""
        try:
            return self._get(ExchangeRateBook, EXCHANGE_RATE_BOOK_ID, as_of=as_of)
        except AggregateNotFoundError:
            return ExchangeRateBook.create()

    def find_receivables(self, account_id: str) -> Receivables | None:
        """The account's receivables; None before anything was posted to them."""
        try:
            return self._get(Receivables, receivables_uuid(account_id))
        except AggregateNotFoundError:
            return None

    def get_receivables(self, account_id: str) -> Receivables:
        """The account's receivables, opened (not yet saved) when there are none."""
        found = self.find_receivables(account_id)
        if found is not None:
            return found
        account = self.get_account(account_id)
        return Receivables.open(account.account_id, account.currency, self.clock())

    def load_many(self, cls: type[TAggregate], ids: Sequence[UUID]) -> dict[UUID, TAggregate]:
        """Rebuild many aggregates from one query (missing ids are left out)."""
        loaded: dict[UUID, TAggregate] = {}
        for aggregate_id, events in self.queries.events_of_many(ids).items():
            aggregate = cls.project(None, _as_domain_events(events))
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded

    # Accounts -----------------------------------------------------------------

    def import_accounts(self, document: ImportDocument, source: str) -> ImportSummary:
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
            _, chunk_problems = self._apply_import_chunk(chunk)
            problems.extend(chunk_problems)
        problems.extend(self._family_problems(document))
        if problems:
            raise InvalidInput(source, problems)
        # The whole file is saved in one transaction: a file is one unit, all of it
        # or none of it, whatever its size and however the save fails (the events
        # of every account are held until then, about 2 KB an account).
        group_events, groups_added, groups_changed = self._configure_bill_groups(
            document.bill_groups
        )
        pending: list[DomainEvent] = list(group_events)
        pending.extend(self._rate_events(document))
        opened = changed = unchanged = packages = charges = usage = contracts = 0
        imported: dict[str, Account] = {}
        for chunk in _chunks(list(enumerate(document.accounts)), IMPORT_CHUNK):
            accounts, _ = self._apply_import_chunk(chunk)
            terms = self._apply_receivables_terms([record for _, record in chunk])
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
                imported[account_id] = self.get_account(account_id)
            return imported[account_id]

        family: dict[str, Account] = {}
        family_at: datetime | None = None  # the clock is read only for a change
        for record in document.accounts:
            member = imported[record.id]
            if member.invoicer == record.invoicer:
                continue
            family_at = family_at or self.clock()
            for account in change_invoicer(member, record.invoicer, account_of, family_at):
                family[account.account_id] = account
        for account in family.values():
            pending.extend(account.collect_events())
        if pending:
            self.save(*pending)
        events = len(pending)
        return ImportSummary(
            opened, changed, unchanged, packages, charges, usage, contracts, events,
            groups_added, groups_changed,
        )  # fmt: skip

    def _apply_receivables_terms(
        self, records: list[AccountRecord]
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
        now = self.clock()
        stored = self.load_many(Receivables, [receivables_uuid(r.id) for r in stated])
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

    def _family_problems(self, document: ImportDocument) -> list[Problem]:
        """Invoicers named by the file but not in it must be stored accounts billed onto
        their own invoices; a stored invoicer with members cannot become a member."""
        in_file = {record.id: record.invoicer for record in document.accounts}
        named = {r.invoicer for r in document.accounts if r.invoicer} - set(in_file)
        stored = self.load_many(
            Account,
            [
                account_uuid(a)
                for a in sorted(named | {r.id for r in document.accounts if r.invoicer})
            ],
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
                m
                for m in (member.members if member else [])
                if in_file.get(m, record.id) == record.id
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

    def _rate_events(self, document: ImportDocument) -> list[DomainEvent]:
        """The file's exchange rates and base currency, not saved; the same again: none."""
        book = self.get_rate_book()
        now = self.clock()
        for rate in document.exchange_rates:
            book.set_rate(rate.base, rate.quote, rate.rate, rate.date, now)
        if document.base_currency is not None:
            book.set_base_currency(document.base_currency, now)
        return list(book.collect_events())

    def _configure_bill_groups(
        self, records: list[BillGroupRecord]
    ) -> tuple[list[DomainEvent], int, int]:
        """The groups' new events, and how many groups are new and how many changed."""
        now = self.clock()
        existing = self.load_many(BillGroup, [bill_group_uuid(r.id) for r in records])
        pending: list[DomainEvent] = []
        added = changed = 0
        for record in records:
            stored = existing.get(bill_group_uuid(record.id))
            group = stored or BillGroup.create(record.id)
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
            )
            new_events = group.collect_events()
            if new_events:
                added += stored is None
                changed += stored is not None
            pending.extend(new_events)
        return pending, added, changed

    def get_bill_group(self, group_id: str) -> BillGroup:
        """The group's delivery settings; an unconfigured group has the defaults."""
        try:
            return self._get(BillGroup, bill_group_uuid(group_id))
        except AggregateNotFoundError:
            return BillGroup.create(group_id)

    def _apply_import_chunk(
        self, chunk: list[tuple[int, AccountRecord]]
    ) -> tuple[list[Account], list[Problem]]:
        now = self.clock()
        existing = self.load_many(Account, [account_uuid(r.id) for _, r in chunk])
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

    # Bill runs ----------------------------------------------------------------

    def schedule_run(
        self,
        run_id: str,
        period: Period,
        posting_date: date | None,
        selection: Selection,
        settings: RunSettings | None = None,
        origin: RunOrigin | None = None,
        disabled: bool = False,
    ) -> ScheduleOutcome:
        """Schedule a run; scheduling the same run again with the same terms is a no-op.
        `origin`: the schedule occurrence that queues it, if any; `disabled`: saved
        disabled in the same transaction, so no manager picks it up before the operator
        has checked or previewed it (`billrun run enable`)."""
        self.check_selection(selection)
        try:
            existing = self.get_run(run_id)
        except RunNotFound:
            run = BillRun.schedule(
                run_id, period, posting_date, selection, self.clock(), settings, origin
            )
            if disabled:
                run.disable(self.clock())
            try:
                self.save(run)
            except RecordConflictError:
                # Another process scheduled the same run id first: judge its terms.
                existing = self.get_run(run_id)
            else:
                return ScheduleOutcome(run, created=True)
        if existing.same_terms(period, posting_date, selection, settings):
            return ScheduleOutcome(existing, created=False)
        raise RunAlreadyScheduled(
            f"run {run_id} is already scheduled for {existing.period} "
            f"(posting {existing.posting_date}, {existing.selection.describe()}); "
            "choose another run id"
        )

    def check_selection(self, selection: Selection) -> None:
        """Refuse a selection naming unknown accounts or bill groups (a typo would
        otherwise schedule a run that bills nothing), or members of a family; an
        unknown name is shown with the known names closest to it."""
        found = self.load_many(Account, [account_uuid(a) for a in selection.accounts])
        problems = []
        known_accounts: set[str] | None = None
        for account_id in selection.accounts:
            account = found.get(account_uuid(account_id))
            if account is None:
                if known_accounts is None:  # read only when needed: it may be many
                    known_accounts = self.queries.distinct_values([ACCOUNT_OPENED], "account_id")
                problems.append(
                    Problem(
                        "--account",
                        f"no account {account_id!r}" + _close(account_id, known_accounts),
                    )
                )
            elif account.invoicer is not None:
                problems.append(
                    Problem(
                        "--account",
                        f"account {account_id} is billed onto {account.invoicer}'s invoices: "
                        f"select {account.invoicer} (a run bills a family with its invoicer)",
                    )
                )
        if selection.groups:
            known_groups = self.queries.distinct_values(
                [ACCOUNT_OPENED, ACCOUNT_DETAILS_CHANGED], "bill_group"
            ) | self.queries.distinct_values([BILL_GROUP_CONFIGURED], "group_id")
            for group in selection.groups:
                if group not in known_groups:
                    problems.append(
                        Problem(
                            "--group",
                            f"no bill group {group!r}: no account is in it and it is not "
                            "configured" + _close(group, known_groups),
                        )
                    )
        if problems:
            raise InvalidInput("selection", problems)

    def iter_history(self, aggregate_id: UUID) -> Iterator[DomainEvent]:
        return iter(_as_domain_events(self.events.get(aggregate_id)))


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


def _close(name: str, known: set[str]) -> str:
    """`; did you mean ...?` with the known names closest to a mistyped one."""
    matches = difflib.get_close_matches(name, sorted(known), n=3)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_domain_events(events: Any) -> Iterator[DomainEvent]:
    for event in events:
        assert isinstance(event, DomainEvent)
        yield event
