"""Queries over the eventsourcing library's PostgreSQL event table that the
library does not offer: loading many aggregates in one round trip, and walking
one event type through the notification log with a cursor."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import AggregateRecorder, Mapper, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier

from infrastructure.persistence import refuse_forged


@dataclass(frozen=True)
class Position:
    notification_id: int
    originator_id: UUID


class EventStoreQueries:
    def __init__(
        self,
        recorder: PostgresApplicationRecorder,
        mapper: Mapper[Any],
        snapshots: AggregateRecorder | None = None,
    ) -> None:
        self._recorder = recorder
        self._mapper = mapper
        self._table = SQL("{}.{}").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        self._snapshots: Composed | None = None
        if isinstance(snapshots, PostgresAggregateRecorder):
            self._snapshots = SQL("{}.{}").format(
                Identifier(snapshots.datastore.schema), Identifier(snapshots.events_table_name)
            )

    @property
    def table_name(self) -> str:
        return f"{self._recorder.datastore.schema}.{self._recorder.events_table_name}"

    def events_of_many(
        self, originator_ids: Sequence[UUID], with_snapshots: bool = False
    ) -> dict[UUID, list[DomainEventProtocol[Any]]]:
        """Every stored event of each aggregate, in version order, in one query;
        `with_snapshots`: each aggregate's latest snapshot first, if it has one,
        and only the events after it (one more query, in the same transaction)."""
        # One index range scan per aggregate, whatever the table's size: as a plain
        # join PostgreSQL hashed the ids and scanned the whole table (300 ms a batch
        # at 500,000 events, growing with it), and `originator_id = ANY(%s)` turned
        # to a slower generic plan after five executions (docs/benchmarks.md).
        statement: Composed = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS f(id, after, n) "
            "CROSS JOIN LATERAL ("
            " SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            " WHERE originator_id = f.id AND originator_version > f.after "
            " ORDER BY originator_version) e ORDER BY f.n, e.originator_version"
        ).format(self._table)
        grouped: dict[UUID, list[Any]] = {i: [] for i in originator_ids}
        to_domain_event = self._mapper.to_domain_event
        ids = list(originator_ids)
        with self._recorder.datastore.transaction(commit=False) as curs:
            after = [0] * len(ids)
            if with_snapshots and self._snapshots is not None:
                found = self._latest_snapshots(curs, ids)
                after = [found[i].originator_version if i in found else 0 for i in ids]
                for originator_id, snapshot in found.items():
                    grouped[originator_id].append(snapshot)
            curs.execute(statement, (ids, after), prepare=True)
            for row in curs.fetchall():
                refuse_forged(
                    row["notification_id"], row["originator_id"], row["originator_version"]
                )
                grouped[row["originator_id"]].append(
                    to_domain_event(
                        StoredEvent(
                            originator_id=row["originator_id"],
                            originator_version=row["originator_version"],
                            topic=row["topic"],
                            state=bytes(row["state"]),
                        )
                    )
                )
        return grouped

    def _latest_snapshots(self, curs: Any, ids: list[UUID]) -> dict[UUID, Any]:
        """Each aggregate's latest snapshot (one backward index probe per id)."""
        assert self._snapshots is not None
        statement = SQL(
            "SELECT s.originator_id, s.originator_version, s.topic, s.state "
            "FROM unnest(%s::uuid[]) AS i(id) CROSS JOIN LATERAL ("
            " SELECT originator_id, originator_version, topic, state FROM {} "
            " WHERE originator_id = i.id ORDER BY originator_version DESC LIMIT 1) s"
        ).format(self._snapshots)
        curs.execute(statement, (ids,), prepare=True)
        return {
            row["originator_id"]: self._mapper.to_domain_event(
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
            for row in curs.fetchall()
        }

    def positions(
        self,
        topic: str,
        after: int,
        upto: int,
        limit: int,
        originator_ids: Sequence[UUID] | None = None,
    ) -> list[Position]:
        """Notifications of one topic in (after, upto], oldest first, at most `limit`."""
        statement: Composed = SQL(
            "SELECT notification_id, originator_id FROM {} "
            "WHERE topic = %s AND notification_id > %s AND notification_id <= %s"
        ).format(self._table)
        params: list[Any] = [topic, after, upto]
        if originator_ids is not None:
            statement += SQL(" AND originator_id = ANY(%s)")
            params.append(list(originator_ids))
        statement += SQL(" ORDER BY notification_id LIMIT %s")
        params.append(limit)
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params, prepare=True)
            return [Position(r["notification_id"], r["originator_id"]) for r in curs.fetchall()]

    def count(self, topic: str, upto: int, originator_ids: Sequence[UUID] | None = None) -> int:
        statement: Composed = SQL(
            "SELECT count(*) AS n FROM {} WHERE topic = %s AND notification_id <= %s"
        ).format(self._table)
        params: list[Any] = [topic, upto]
        if originator_ids is not None:
            statement += SQL(" AND originator_id = ANY(%s)")
            params.append(list(originator_ids))
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            row = curs.fetchone()
            return int(row["n"]) if row else 0

    def originators(self, topic: str) -> list[UUID]:
        """The aggregates that recorded at least one event of `topic`."""
        statement = SQL("SELECT DISTINCT originator_id FROM {} WHERE topic = %s").format(
            self._table
        )
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (topic,))
            return [row["originator_id"] for row in curs.fetchall()]

    def originators_with(self, topics: Sequence[str], field: str, value: str) -> list[UUID]:
        """The aggregates with an event of `topics` whose stored JSON has `field` =
        `value` (e.g. every account a run billed: `run_id`)."""
        statement = SQL(
            "SELECT DISTINCT originator_id FROM {} WHERE topic = ANY(%s) "
            "AND convert_from(state, 'UTF8')::jsonb ->> %s = %s"
        ).format(self._table)
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (list(topics), field, value))
            return [row["originator_id"] for row in curs.fetchall()]

    def distinct_values(self, topics: Sequence[str], field: str) -> set[str]:
        """Every value the stored JSON of `topics` events holds in `field` (e.g. every
        bill group an account was ever in): what a name typed by a user may mean."""
        statement = SQL(
            "SELECT DISTINCT convert_from(state, 'UTF8')::jsonb ->> %s AS value FROM {} "
            "WHERE topic = ANY(%s)"
        ).format(self._table)
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (field, list(topics)))
            return {str(row["value"]) for row in curs.fetchall() if row["value"] is not None}

    def currency_pairs(
        self,
        opened_topic: str,
        invoicer_topic: str,
        upto: int,
        details_topic: str | None = None,
        accounts: Sequence[str] = (),
        groups: Sequence[str] = (),
    ) -> tuple[set[str], set[tuple[str, str]]]:
        """The currencies of the accounts opened up to `upto`, and the (account
        currency, invoicer currency) pairs of accounts billed onto an invoicer in
        another currency: what a run may have to convert. Read from the stored JSON
        of the accounts' events (an account's currency never changes; its invoicer is
        the one its latest `invoicer_topic` event names).

        With `accounts` or `groups`: only the families a run of that selection bills
        (an invoicer selected by its id or its current bill group, read from its
        latest `opened_topic`/`details_topic` event, with its members), so a run
        is not held up by a currency none of its accounts uses."""
        scoped = bool(accounts or groups)
        statement = SQL(
            "WITH opened AS ("
            "  SELECT originator_id, convert_from(state, 'UTF8')::jsonb AS s FROM {table}"
            "  WHERE topic = %(opened)s AND notification_id <= %(upto)s),"
            " invoicers AS ("
            "  SELECT DISTINCT ON (originator_id) originator_id,"
            "   convert_from(state, 'UTF8')::jsonb ->> 'invoicer' AS invoicer FROM {table}"
            "  WHERE topic = %(invoicer)s ORDER BY originator_id, originator_version DESC),"
            " grouped AS ("
            "  SELECT DISTINCT ON (originator_id) originator_id,"
            "   convert_from(state, 'UTF8')::jsonb ->> 'bill_group' AS bill_group FROM {table}"
            "  WHERE %(scoped)s AND topic = ANY(%(grouping)s)"
            "  ORDER BY originator_id, originator_version DESC),"
            " billed AS ("
            "  SELECT m.s ->> 'currency' AS source, h.s ->> 'currency' AS target,"
            "   COALESCE(i.invoicer, m.s ->> 'account_id') AS payer,"
            "   COALESCE(h.originator_id, m.originator_id) AS payer_id"
            "  FROM opened m LEFT JOIN invoicers i ON i.originator_id = m.originator_id"
            "  LEFT JOIN opened h ON h.s ->> 'account_id' = i.invoicer)"
            " SELECT DISTINCT b.source, b.target FROM billed b"
            " LEFT JOIN grouped g ON g.originator_id = b.payer_id"
            " WHERE NOT %(scoped)s OR b.payer = ANY(%(accounts)s)"
            "  OR g.bill_group = ANY(%(groups)s)"
        ).format(table=self._table)
        params = {
            "opened": opened_topic,
            "upto": upto,
            "invoicer": invoicer_topic,
            "scoped": scoped,
            "grouping": [opened_topic, details_topic or opened_topic],
            "accounts": list(accounts),
            "groups": list(groups),
        }
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            rows = curs.fetchall()
        currencies = {str(r["source"]) for r in rows}
        pairs = {
            (str(r["source"]), str(r["target"]))
            for r in rows
            if r["target"] is not None and r["target"] != r["source"]
        }
        return currencies, pairs

    def events_with_ids(self, originator_ids: Sequence[UUID]) -> list[NotificationRow]:
        """The stored events of some aggregates with their notification ids, in commit order."""
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "WHERE originator_id = ANY(%s) ORDER BY notification_id"
        ).format(self._table)
        with self._recorder.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (list(originator_ids),), prepare=True)
            return [_row(r) for r in curs.fetchall()]

    def events_after(self, originator_ids: Sequence[UUID], after: int) -> Iterator[NotificationRow]:
        """Events of some aggregates committed after `after`, in commit order, streamed
        through a server-side cursor (the id list may be a run's 100,000 invoices)."""
        if not originator_ids:
            return
        statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "WHERE originator_id = ANY(%s) AND notification_id > %s ORDER BY notification_id"
        ).format(self._table)
        with (
            self._recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="billrun_events_after") as curs,
        ):
            curs.itersize = 5000
            curs.execute(statement, (list(originator_ids), after))
            for r in curs:
                yield _row(r)

    def notification_rows(self, first: int, last: int, page_size: int) -> Iterator[NotificationRow]:
        """Every stored event with first <= notification id <= last, read in pages of
        at most `page_size` ids."""
        return itertools.chain.from_iterable(
            self._windows(Identifier("originator_id"), first, last, page_size)
        )

    def hashed_rows(self, first: int, last: int, page_size: int) -> Iterator[HashedRow]:
        """`notification_rows` with the originator id as PostgreSQL's text of it (the
        same as `str(UUID)`): for the audit, which only formats and compares it.
        Building, printing and hashing a `UUID` per row was about a quarter of
        `billrun audit verify`'s reading (docs/benchmarks.md, audit verify)."""
        return itertools.chain.from_iterable(
            self._windows(SQL("originator_id::text"), first, last, page_size)
        )

    def _windows(
        self, originator: Composable, first: int, last: int, page_size: int
    ) -> Iterator[list[Any]]:
        """The rows with first <= notification id <= last, a window of at most
        `page_size` ids at a time, as plain tuples over the binary protocol (a dict
        per row, then a tuple made of it, cost twice the reading itself).

        Each page asks for a window of ids, not "the next N after": PostgreSQL's
        estimate for `id BETWEEN position AND last` is stale right after a bill run
        (the table not yet analysed), and it then read and sorted every remaining
        row for each page, 85 ms a page of 5,000 at 39,000 events, most of
        `billrun audit verify` (docs/benchmarks.md, CLI reads).
        """
        statement = SQL(
            "SELECT notification_id, {}, originator_version, topic, state FROM {} "
            "WHERE notification_id >= %s AND notification_id <= %s ORDER BY notification_id"
        ).format(originator, self._table)
        # An empty window jumps to the next stored id (one index probe), so a sparse
        # range (the ids below 1 the audit checks, a long run of rolled-back ids)
        # costs one query, not one per window.
        following = SQL(
            "SELECT min(notification_id) FROM {} "
            "WHERE notification_id > %s AND notification_id <= %s"
        ).format(self._table)
        position = first
        while position <= last:
            end = min(last, position + page_size - 1)
            with (
                self._recorder.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row, binary=True) as curs,
            ):
                curs.execute(statement, (position, end), prepare=True)
                rows: list[Any] = curs.fetchall()
                if not rows:
                    curs.execute(following, (end, last), prepare=True)
                    found = curs.fetchone()
                    if found is None or found[0] is None:
                        return
                    position = int(found[0])
                    continue
            yield rows
            position = end + 1

    def head(self) -> int:
        """The notification id of the last committed event (0 for an empty log)."""
        return self._recorder.max_notification_id() or 0


NotificationRow = tuple[int, UUID, int, str, bytes]
"""(notification id, originator id, version, topic, stored state)."""

HashedRow = tuple[int, str, int, str, bytes]
"""A `NotificationRow` with the originator id as text."""


def _row(r: dict[str, Any]) -> NotificationRow:
    return (
        r["notification_id"],
        r["originator_id"],
        r["originator_version"],
        r["topic"],
        bytes(r["state"]),
    )
