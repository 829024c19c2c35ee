"""The Billing application: its wiring (the event store, the clock, the seller and
the payment gateway the entrypoint configured), loading aggregates, and `save`.

The commands are functions taking the application, in the package of their
bounded context: `application/billing/` (importing, usage, charges, rates,
invoicers), `application/runs/`, `application/invoicing/`,
`application/receivables/`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import EventStore, Recording
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import Environment, EnvType

from application.shared.clock import Clock, system_clock
from application.shared.errors import AccountNotFound, InvoiceNotFound, RunNotFound
from application.shared.ports import Seller
from application.shared.riders import carried, riders
from application.shared.snapshots import SNAPSHOT_CLASSES, SNAPSHOT_INTERVAL, snapshots_due
from domain.billing.account import Account
from domain.billing.exchange_rates import EXCHANGE_RATE_BOOK_ID, ExchangeRateBook
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.entities import IssuingEntity
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import InvoiceNumberSequence
from domain.receivables.receivables import Receivables, receivables_uuid
from domain.runs.bill_run import BillRun
from domain.shared.errors import DomainError
from domain.shared.ids import (
    INVOICE_NUMBER_SEQUENCE_ID,
    account_uuid,
    bill_group_uuid,
    entity_uuid,
    run_uuid,
)
from domain.shared.model import Aggregate, AggregateSnapshot, DomainEvent
from infrastructure.event_store import EventStoreQueries
from infrastructure.persistence import schema_lock
from infrastructure.settings import DEFAULT_PAYMENT_GATEWAY

TAggregate = TypeVar("TAggregate", bound=Aggregate)


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
    env: ClassVar[dict[str, str]] = {"IS_SNAPSHOTTING_ENABLED": "y"}
    """The library's snapshot store (`<name>_snapshots`): see `application.shared.snapshots`."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock = system_clock,
        snapshot_interval: int = SNAPSHOT_INTERVAL,
    ) -> None:
        super().__init__(env)
        self.clock = clock
        self.snapshot_interval = snapshot_interval
        """Events between two snapshots of an account (`application.shared.snapshots`)."""
        if not isinstance(self.recorder, PostgresApplicationRecorder):
            raise TypeError("billrun stores its events in PostgreSQL (PERSISTENCE_MODULE)")
        self.queries = EventStoreQueries(
            self.recorder, self.mapper, self.snapshots.recorder if self.snapshots else None
        )

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """The library's snapshot store, its table created one process at a time
        (as the events table: `ArrayInsertRecorder.create_table`)."""
        datastore = cast(PostgresApplicationRecorder, self.recorder).datastore
        with schema_lock(datastore, f"{self.name.lower()}_snapshots"):
            return super().construct_snapshot_store()

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
        # An HTTP write's idempotency record commits with the write's own events.
        riding = riders()
        for obj in (*objs, *riding):
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            elif isinstance(obj, DomainEvent):
                processing_event.events.append(obj)
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        if riding:
            carried()
        if self.snapshots is not None:
            # After the commit, and not in its transaction: a snapshot is a cache of
            # the events just stored, so losing one to a crash here costs a longer
            # load, never a wrong one.
            due = snapshots_due(
                processing_event.events, processing_event.aggregates, self.snapshot_interval
            )
            if due:
                self.snapshots.put(due)
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

    def get_sequence(self, sequence_id: UUID) -> InvoiceNumberSequence:
        """A number sequence (an entity's own, `domain.invoicing.entities.sequence_id`),
        empty until its first reservation."""
        try:
            return self._get(InvoiceNumberSequence, sequence_id)
        except AggregateNotFoundError:
            return InvoiceNumberSequence(sequence_id)

    def find_entity(self, entity_id: str) -> IssuingEntity | None:
        """The issuing entity recorded under `entity_id`; None if there is none."""
        try:
            return self._get(IssuingEntity, entity_uuid(entity_id))
        except AggregateNotFoundError:
            return None

    def get_entity(self, entity_id: str) -> IssuingEntity:
        """The issuing entity that bills under `entity_id`; refused when unknown
        (the import and `billrun entity` check bill groups name a known one)."""
        entity = self.find_entity(entity_id)
        if entity is None:
            raise DomainError(f"unknown issuing entity {entity_id!r} (see `billrun entity list`)")
        return entity

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
        snapshots = cls in SNAPSHOT_CLASSES
        for aggregate_id, events in self.queries.events_of_many(ids, snapshots).items():
            aggregate = cls.project(None, _as_loaded(events))
            if aggregate is not None:
                loaded[aggregate_id] = aggregate
        return loaded

    def get_bill_group(self, group_id: str) -> BillGroup:
        """The group's delivery settings; an unconfigured group has the defaults."""
        try:
            return self._get(BillGroup, bill_group_uuid(group_id))
        except AggregateNotFoundError:
            return BillGroup.create(group_id)

    def iter_history(self, aggregate_id: UUID) -> Iterator[DomainEvent]:
        return iter(_as_domain_events(self.events.get(aggregate_id)))


def _as_domain_events(events: Any) -> Iterator[DomainEvent]:
    for event in events:
        assert isinstance(event, DomainEvent)
        yield event


def _as_loaded(events: Any) -> Iterator[DomainEvent | AggregateSnapshot]:
    """Events, the first of which may be a snapshot (`events_of_many`)."""
    for event in events:
        assert isinstance(event, DomainEvent | AggregateSnapshot)
        yield event
