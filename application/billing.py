"""The Billing application: the commands operators run, and loading aggregates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import RecordConflictError, Recording
from eventsourcing.postgres import PostgresApplicationRecorder

from application.clock import Clock, system_clock
from application.errors import (
    AccountNotFound,
    InvalidInput,
    InvoiceNotFound,
    Problem,
    RunNotFound,
)
from application.import_document import AccountRecord, BillGroupRecord, ImportDocument
from domain.account import Account, AccountOpened, PackageTerms
from domain.bill_group import BillGroup
from domain.bill_run import BillRun, RunSettings, Selection
from domain.errors import DomainError, RunAlreadyScheduled
from domain.ids import INVOICE_NUMBER_SEQUENCE_ID, account_uuid, bill_group_uuid, run_uuid
from domain.invoice import Invoice
from domain.invoice_numbers import InvoiceNumberSequence
from domain.model import Aggregate, DomainEvent
from domain.periods import Period
from infrastructure.event_store import EventStoreQueries

TAggregate = TypeVar("TAggregate", bound=Aggregate)

IMPORT_CHUNK = 1000


@dataclass(frozen=True)
class ImportSummary:
    accounts_opened: int
    accounts_changed: int
    accounts_unchanged: int
    packages_added: int
    events: int


@dataclass(frozen=True)
class ScheduleOutcome:
    run: BillRun
    created: bool


class Billing(Application[UUID]):
    """Event-sourced billing: accounts, bill runs and invoices in one event store."""

    name = "Billing"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock = system_clock) -> None:
        super().__init__(env)
        self.clock = clock
        if not isinstance(self.recorder, PostgresApplicationRecorder):
            raise TypeError("billrun stores its events in PostgreSQL (PERSISTENCE_MODULE)")
        self.queries = EventStoreQueries(self.recorder, self.mapper)

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
        """Open or update the accounts of a validated import document.

        Every record is checked against the stored accounts before anything is
        saved (changes the event history forbids are refused with their path), so a
        refused import writes nothing. Saving is then done in chunks so memory stays
        flat; a re-import after an interruption completes it, as importing is
        idempotent.
        """
        problems: list[Problem] = []
        for chunk in _chunks(list(enumerate(document.accounts)), IMPORT_CHUNK):
            _, chunk_problems = self._apply_import_chunk(chunk)
            problems.extend(chunk_problems)
        if problems:
            raise InvalidInput(source, problems)
        groups = self._configure_bill_groups(document.bill_groups)
        opened = changed = unchanged = packages = 0
        events = len(groups)
        if groups:
            self.save(*groups)
        for chunk in _chunks(list(enumerate(document.accounts)), IMPORT_CHUNK):
            accounts, _ = self._apply_import_chunk(chunk)
            pending: list[DomainEvent] = []
            for account in accounts:
                new_events = account.collect_events()
                if not new_events:
                    unchanged += 1
                    continue
                opened += isinstance(new_events[0], AccountOpened)
                changed += not isinstance(new_events[0], AccountOpened)
                packages += sum(type(e).__name__ == "PackageSubscribed" for e in new_events)
                pending.extend(new_events)
            if pending:
                self.save(*pending)
                events += len(pending)
        return ImportSummary(opened, changed, unchanged, packages, events)

    def _configure_bill_groups(self, records: list[BillGroupRecord]) -> list[DomainEvent]:
        now = self.clock()
        existing = self.load_many(BillGroup, [bill_group_uuid(r.id) for r in records])
        pending: list[DomainEvent] = []
        for record in records:
            group = existing.get(bill_group_uuid(record.id)) or BillGroup.create(record.id)
            group.configure(
                record.delivery,
                record.email_subject,
                record.email_template,
                record.first_invoice_email_template,
                now,
            )
            pending.extend(group.collect_events())
        return pending

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
                        record.name, record.invoice_email, record.bill_group, now
                    )
                problems.extend(_apply_packages(account, record, where, now))
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
    ) -> ScheduleOutcome:
        """Schedule a run; scheduling the same run again with the same terms is a no-op."""
        self._check_selection(selection)
        try:
            existing = self.get_run(run_id)
        except RunNotFound:
            run = BillRun.schedule(run_id, period, posting_date, selection, self.clock(), settings)
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

    def _check_selection(self, selection: Selection) -> None:
        missing = [
            a for a in selection.accounts if account_uuid(a) not in self._existing(selection)
        ]
        if missing:
            raise InvalidInput("--account", [Problem("", f"no account {a!r}") for a in missing])

    def _existing(self, selection: Selection) -> set[UUID]:
        ids = [account_uuid(a) for a in selection.accounts]
        return set(self.queries.events_of_many(ids)) if ids else set()

    def iter_history(self, aggregate_id: UUID) -> Iterator[DomainEvent]:
        return iter(_as_domain_events(self.events.get(aggregate_id)))


def _apply_packages(account: Account, record: AccountRecord, where: str, now: Any) -> list[Problem]:
    problems: list[Problem] = []
    for p, package in enumerate(record.packages):
        at = f"{where}.packages[{p}]"
        terms = PackageTerms(
            package_id=package.id,
            description=package.description,
            amount=package.amount,
            frequency=package.frequency,
            timing=package.timing,
            start_date=package.start_date,
            end_date=package.end_date,
        )
        current = account.packages.get(package.id)
        try:
            if current is None:
                account.subscribe(terms, package.next_bill_date, now)
                continue
            fixed = ("frequency", "timing", "start_date")
            for field in fixed:
                if getattr(current.terms, field) != getattr(terms, field):
                    problems.append(
                        Problem(
                            f"{at}.{field}",
                            f"cannot change from {getattr(current.terms, field)} to "
                            f"{getattr(terms, field)}: add a new package instead",
                        )
                    )
            account.amend_package(
                package.id, package.description, package.amount, package.end_date, now
            )
        except DomainError as error:
            problems.append(Problem(at, str(error)))
    return problems


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _as_domain_events(events: Any) -> Iterator[DomainEvent]:
    for event in events:
        assert isinstance(event, DomainEvent)
        yield event
