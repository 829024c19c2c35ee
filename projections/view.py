"""A versioned read model that the library's ProjectionRunner and our batched
catch-up both write through, one transaction per batch."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.utils import Environment
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from application.billing import Billing
from domain.model import DomainEvent


class View(PostgresTrackingRecorder):
    """Read-model tables next to the library's tracking table.

    Subclasses name their tables with `table("invoices")`, which appends the
    view's version, so a new version can be built beside the old one.
    """

    name: ClassVar[str]
    version: ClassVar[int]

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(self.schema())

    @classmethod
    def versioned_name(cls) -> str:
        return f"{cls.name}_v{cls.version}"

    def table(self, base: str) -> Composable:
        return SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(f"{base}_v{self.version}")
        )

    def schema(self) -> list[Composed]:
        """CREATE statements for this view's tables (idempotent)."""
        raise NotImplementedError

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        """Update the tables for a batch of events, in notification order."""
        raise NotImplementedError

    def apply(self, events: Sequence[DomainEvent], tracking: Tracking) -> bool:
        """Write a batch and its tracking record atomically; skip it if already seen.

        An advisory lock per view serialises concurrent writers (a CLI read
        catching up while a worker follows the log), so a batch is applied once.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(),))
            seen = self._max_tracking_id(tracking.application_name, curs)
            if seen is not None and seen >= tracking.notification_id:
                return False
            if events:
                self.write(curs, events)
            self._insert_tracking(curs, tracking)
        return True

    def _lock_key(self) -> int:
        return zlib.crc32(self.versioned_name().encode())


class ViewProjection(Projection[View]):
    """The library's Projection for a View: each event is applied as a batch of one."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply([domain_event], tracking)


def open_view(view_class: type[View], env: dict[str, str]) -> View:
    """Construct a view (creating its tables) the way the library's ProjectionRunner does."""
    factory = InfrastructureFactory[View].construct(
        env=Environment(view_class.versioned_name(), env)
    )
    return factory.tracking_recorder(view_class)


ProgressCallback = Callable[[int, int], None]


def catch_up(
    app: Billing,
    view: View,
    topics: Sequence[str],
    page_size: int = 5000,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Bring `view` up to the current head of the log; return the head position.

    Reads the log in pages filtered by topic and applies each page in one
    transaction. The final tracking record is the head itself, even when the
    last events are of other topics, so `has_tracking_id(head)` holds after.
    """
    head = app.queries.head()
    position = view.max_tracking_id(app.name) or 0
    start = position
    while position < head:
        page = app.recorder.select_notifications(
            position + 1, page_size, stop=head, topics=list(topics)
        )
        last = page[-1].id if len(page) == page_size else head
        events = [app.mapper.to_domain_event(n) for n in page]
        view.apply([e for e in events if isinstance(e, DomainEvent)], Tracking(app.name, last))
        position = last
        if on_progress:
            on_progress(position - start, head - start)
    return head
