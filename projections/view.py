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

from application.shared.app import Billing
from domain.shared.model import DomainEvent
from infrastructure.persistence import bound_waits, schema_lock


class View(PostgresTrackingRecorder):
    """Read-model tables next to the library's tracking table.

    A view's tables and tracking table carry a suffix naming the version of the
    code that built them and, after a rebuild, its generation (`invoices_v1`,
    `invoices_v2_3`), so a new version is built beside the one serving reads.
    Subclasses name their tables with `table("invoices")`.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    """The version of the code's schema and derivation rules; bump it on any change."""
    tables: ClassVar[tuple[str, ...]]

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        bound_waits(datastore)
        super().__init__(datastore, **kwargs)
        label = self.tracking_table_name.removesuffix("_tracking")
        self.suffix = label.removeprefix(self.name + "_") if label != self.name else "v0"
        self.sql_create_statements.extend(self.schema())

    @classmethod
    def versioned_name(cls) -> str:
        return f"{cls.name}_v{cls.version}"

    @property
    def label(self) -> str:
        return f"{self.name}_{self.suffix}"

    @property
    def built_version(self) -> int:
        """The code version these tables were built by (from the suffix)."""
        return suffix_version(self.suffix)

    def table(self, base: str) -> Composable:
        return SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(f"{base}_{self.suffix}")
        )

    def drop(self) -> None:
        """Drop this version's tables and its tracking table."""
        with self.datastore.transaction(commit=True) as curs:
            for base in self.tables:
                curs.execute(SQL("DROP TABLE IF EXISTS {}").format(self.table(base)))
            curs.execute(
                SQL("DROP TABLE IF EXISTS {}.{}").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
                )
            )

    def checksum(self) -> str:
        """MD5 over every table's rows in key order: equal checksums, equal contents."""
        parts = []
        with self.datastore.transaction(commit=False) as curs:
            for base in self.tables:
                curs.execute(
                    SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        "AS sum FROM {} AS t").format(self.table(base))
                )  # fmt: skip
                row = curs.fetchone()
                parts.append(f"{base}:{row['sum'] if row else ''}")
        return ";".join(parts)

    def schema(self) -> list[Composed]:
        """CREATE statements for this view's tables (idempotent)."""
        raise NotImplementedError

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        """Update the tables for a batch of events, in notification order."""
        raise NotImplementedError

    def apply(
        self, events: Sequence[DomainEvent], tracking: Tracking, after: int | None = None
    ) -> bool:
        """Write a batch and its tracking record atomically; skip it if already seen.

        An advisory lock per view serialises concurrent writers (a CLI read
        catching up while a worker follows the log), so a batch is applied once.
        `after` is the position a batch of several notifications was read from:
        if another writer has since applied part of it, nothing is written and
        False is returned, so the caller reads on from the view's position.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(),))
            seen = self._max_tracking_id(tracking.application_name, curs)
            if seen is not None and seen >= tracking.notification_id:
                return False
            if after is not None and (seen or 0) > after:
                return False
            if events:
                self.write(curs, events)
            self._insert_tracking(curs, tracking)
        return True

    def create_table(self) -> None:
        """The library's table creation, one process at a time.

        Two processes opening a new view at once would both find no tracking
        table, and the second's migration record would then conflict with the
        first's (IntegrityError). A session advisory lock makes the second wait
        and then find the tables there.
        """
        with schema_lock(self.datastore, self.tracking_table_name):
            super().create_table()

    def _lock_key(self) -> int:
        return zlib.crc32(self.label.encode())


class ViewProjection(Projection[View]):
    """The library's Projection for a View: each event is applied as a batch of one."""

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply([domain_event], tracking)


def suffix_version(suffix: str) -> int:
    """`v2` and `v2_3` -> 2."""
    return int(suffix.removeprefix("v").split("_", 1)[0])


def open_view(view_class: type[View], env: dict[str, str], suffix: str | None = None) -> View:
    """Construct a view (creating its tables) the way the library's ProjectionRunner does.

    Without a suffix, the tables of the code's own version (`<name>_v<version>`).
    """
    label = view_class.versioned_name() if suffix is None else f"{view_class.name}_{suffix}"
    factory = InfrastructureFactory[View].construct(env=Environment(label, env))
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
        batch = [e for e in events if isinstance(e, DomainEvent)]
        if view.apply(batch, Tracking(app.name, last), after=position):
            position = last
        else:
            # Another writer moved the view on meanwhile: read on from where it is.
            position = max(position, view.max_tracking_id(app.name) or 0)
        if on_progress:
            on_progress(min(position, head) - start, head - start)
    return head
