"""Base classes for domain events and aggregates.

Events are frozen pydantic models, so they validate on construction and have a
JSON form (money as Decimal strings, dates as ISO 8601) that the event store,
the NATS relay and auditors all share. Aggregates are plain mutable objects that
satisfy the eventsourcing library's aggregate protocols (`id`, `version`,
`collect_events()`), so `Application.save()` stores them; they do not inherit
from the library, which keeps `domain/` free of infrastructure.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.shared.errors import DomainError


class ValueObject(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class DomainEvent(ValueObject):
    """A past-tense fact about one aggregate, at one version."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime

    from_aggregate: ClassVar[tuple[str, ...]] = ()
    """Fields the aggregate fills from its own attributes of the same name when it
    records the event, unless the command gives them: the natural ids (account,
    currency, run, number) a version 2 event names itself by, so a reader of one
    event (the NATS relay) need not look the aggregate's opening event up."""


TAggregate = TypeVar("TAggregate", bound="Aggregate")


class Aggregate:
    """An aggregate root: state is derived only by applying its own events.

    Commands check their invariants first and then call `_trigger`, so a refused
    command records nothing. `_when_<EventName>` methods evolve the state.
    """

    kind: ClassVar[str] = "aggregate"

    def __init__(self, aggregate_id: UUID) -> None:
        self.id = aggregate_id
        self.version = 0
        self.created_on: datetime | None = None
        self.modified_on: datetime | None = None
        self.snapshot_version = 0
        """The version of the snapshot this object was rebuilt from or last taken
        of (0: none), where the application counts events to the next one."""
        self._pending: list[DomainEvent] = []

    def _trigger(self, event_class: type[DomainEvent], at: datetime, **fields: Any) -> None:
        for name in event_class.from_aggregate:
            fields.setdefault(name, getattr(self, name))
        event = event_class(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=at,
            **fields,
        )
        self.apply(event)
        self._pending.append(event)

    def apply(self, event: DomainEvent) -> None:
        if event.originator_version != self.version + 1:
            raise DomainError(
                f"{type(self).__name__} {self.id}: event version "
                f"{event.originator_version} does not follow version {self.version}"
            )
        getattr(self, f"_when_{type(event).__name__}")(event)
        self.version = event.originator_version
        if self.created_on is None:
            self.created_on = event.timestamp
        self.modified_on = event.timestamp

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events recorded since the last save (the library's protocol)."""
        events, self._pending = self._pending, []
        return events

    @property
    def has_pending_events(self) -> bool:
        return bool(self._pending)

    @classmethod
    def _blank(cls, aggregate_id: UUID) -> Self:
        return cls(aggregate_id)

    @classmethod
    def project(
        cls, aggregate: Self | None, events: Iterable[DomainEvent | AggregateSnapshot]
    ) -> Self | None:
        """Rebuild (or fast-forward) an aggregate from stored events, the first of
        which may be a snapshot (the state at its version: the events follow it)."""
        for event in events:
            if isinstance(event, AggregateSnapshot):
                aggregate = cls._restored(event)
                continue
            if aggregate is None:
                aggregate = cls._blank(event.originator_id)
            aggregate.apply(event)
        return aggregate

    @classmethod
    def _restored(cls, snapshot: AggregateSnapshot) -> Self:
        aggregate = cls._blank(snapshot.originator_id)
        for name in type(snapshot).state_fields():
            setattr(aggregate, name, getattr(snapshot, name))
        aggregate.version = aggregate.snapshot_version = snapshot.originator_version
        aggregate.modified_on = snapshot.timestamp
        return aggregate


class AggregateSnapshot(ValueObject):
    """An aggregate's whole state at one version, so that loading it reads this
    and the events after it instead of its whole history.

    Not an event (nothing happened): snapshots live beside the log, in the
    library's snapshot store, are never published or sealed, and can be
    dropped and taken again from the events at any time. A subclass declares one
    field per attribute of its aggregate's state, typed, so the JSON form
    rebuilds exactly (Decimals, dates); `tests/unit/test_snapshots.py` holds
    that the fields are the aggregate's attributes, all of them.
    """

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    """When the aggregate was last modified (its last event's timestamp)."""

    _identity: ClassVar[frozenset[str]] = frozenset(
        {"originator_id", "originator_version", "timestamp"}
    )

    @classmethod
    def state_fields(cls) -> list[str]:
        """The aggregate attributes this snapshot holds."""
        return [name for name in cls.model_fields if name not in cls._identity]

    @classmethod
    def take(cls, aggregate: Aggregate) -> Self:
        """The aggregate's state now (at its current version)."""
        if aggregate.modified_on is None:
            raise DomainError(f"{type(aggregate).__name__} {aggregate.id} has no events yet")
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=aggregate.modified_on,
            **{name: getattr(aggregate, name) for name in cls.state_fields()},
        )
