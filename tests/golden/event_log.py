"""A committed event log written by billrun at 43dce88, before event classes
moved: every event type at least once (394 events, 75 types).

It was made by driving `billrun` through a small book (`event_log.md` says
how) and exported with `export_event_log`. Tests load it into a fresh
database with `load_event_log` and check that today's code still reads,
projects, seals and publishes it: history cannot be rewritten, so code must
keep understanding every event it ever wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

EVENT_LOG = Path(__file__).with_name("event_log_43dce88.jsonl")
EVENTS_TABLE = "billing_events"


def export_event_log(database_url: str, path: Path = EVENT_LOG) -> int:
    """Write every stored event, in notification order, one JSON object a line."""
    with psycopg.connect(database_url) as conn, path.open("w", encoding="utf-8") as out:
        rows = conn.execute(
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {EVENTS_TABLE} ORDER BY notification_id"
        ).fetchall()
        for notification_id, originator_id, version, topic, state in rows:
            record = {
                "notification_id": notification_id,
                "originator_id": str(originator_id),
                "originator_version": version,
                "topic": topic,
                "state": bytes(state).decode("utf-8"),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(rows)


def load_event_log(database_url: str, path: Path = EVENT_LOG) -> int:
    """Insert the fixture's rows, byte for byte and with their notification ids,
    into an events table the application has already created."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {EVENTS_TABLE} "
            "(notification_id, originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    r["state"].encode("utf-8"),
                )
                for r in records
            ],
        )
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{EVENTS_TABLE}', 'notification_id'), "
            f"(SELECT max(notification_id) FROM {EVENTS_TABLE}))"
        )
    return len(records)
