"""A save larger than the socket buffers completes, also when it has to wait for
another writer's table lock: sent in libpq pipeline mode (the library's insert),
psycopg left the rest of the query in libpq's buffer and both ends waited for
each other for ever (a large `billrun import` hung)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from uuid import uuid4

import psycopg
from eventsourcing.persistence import StoredEvent

from application.shared.app import Billing

EVENTS = 1_000
STATE_BYTES = 32_000
"""32 MB in one statement: more than loopback's send and receive buffers hold
together (a few MB), so the client cannot hand the whole query to the kernel
while the server waits for the lock."""

HANG_BOUND = 300.0
"""Seconds after which the save is declared hung rather than slow: the test
fails instead of waiting for ever (the hang it guards against never ends)."""


def test_a_batch_larger_than_the_socket_buffers_is_saved_after_waiting_for_the_lock(
    billing: Billing, database_url: str
) -> None:
    recorder = billing.recorder
    table = f"{recorder.datastore.schema}.{recorder.events_table_name}"  # type: ignore[attr-defined]
    events = [
        StoredEvent(uuid4(), 1, "billrun.test.LargeEvent", os.urandom(STATE_BYTES))
        for _ in range(EVENTS)
    ]
    saved: list[Sequence[int] | None] = []

    with psycopg.connect(database_url) as holder:
        holder.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        saving = threading.Thread(
            target=lambda: saved.append(recorder.insert_events(events)), daemon=True
        )
        saving.start()
        _wait_until_the_save_waits_for(database_url, table, saving)
        holder.rollback()  # the other writer finishes; the save may go on

    saving.join(HANG_BOUND)
    assert not saving.is_alive(), "the save hung after the table lock was released"
    ids = saved[0]
    assert ids is not None and len(ids) == EVENTS
    assert list(ids) == sorted(ids)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*), sum(length(state)) FROM {table}").fetchone()
    assert row == (EVENTS, EVENTS * STATE_BYTES)


def _wait_until_the_save_waits_for(database_url: str, table: str, saving: threading.Thread) -> None:
    """Until a session (the save) is queued behind another's lock on `table`,
    or the save has ended (it failed: the assertions after say so)."""
    with psycopg.connect(database_url, autocommit=True) as watcher:
        while saving.is_alive() and not _someone_waits_for(watcher, table):
            time.sleep(0.05)


def _someone_waits_for(watcher: psycopg.Connection, table: str) -> bool:
    row = watcher.execute(
        "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted AND relation = %s::regclass)",
        (table,),
    ).fetchone()
    return bool(row and row[0])
