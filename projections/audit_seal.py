"""The audit seal: a SHA-256 hash chain over the notification log, in commit order.

For each stored event (notification) the seal keeps

    digest = SHA-256( "<notification id>\\n<topic>\\n<originator id>\\n<version>\\n" + state bytes )
    link   = SHA-256( previous link + digest )        (the first previous link is 32 zero bytes)

so the last link (the head) commits to every byte of every event before it, in
order. `verify` recomputes digests and links from the stored events and reports
the first notification where the log no longer matches its seal: an altered
event (digest differs), a deleted one (sealed but gone), or an inserted one (in
the log below the sealed head but never sealed). Anchoring the head elsewhere
(`billrun audit head`) also protects against someone rewriting the seal itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg.sql import SQL, Composed

from application.billing import Billing
from infrastructure.event_store import NotificationRow
from projections.view import View

GENESIS = bytes(32)
PAGE_SIZE = 5000


def event_digest(nid: int, topic: str, originator_id: UUID, version: int, state: bytes) -> bytes:
    header = f"{nid}\n{topic}\n{originator_id}\n{version}\n".encode()
    return hashlib.sha256(header + state).digest()


def chain(previous: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous + digest).digest()


@dataclass(frozen=True)
class SealHead:
    notification_id: int
    link: str
    count: int


@dataclass(frozen=True)
class Finding:
    notification_id: int
    problem: str

    def __str__(self) -> str:
        return f"notification {self.notification_id}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head: SealHead
    finding: Finding | None
    unsealed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": self.head.link,
            "head_notification_id": self.head.notification_id,
            "sealed_events": self.head.count,
            "first_mismatch": None
            if self.finding is None
            else {"notification_id": self.finding.notification_id, "problem": self.finding.problem},
            "unsealed_events": self.unsealed,
        }


class AuditSealView(View):
    name = "audit_seal"
    version = 1
    tables = ("audit_seal",)

    def schema(self) -> list[Composed]:
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (notification_id bigint PRIMARY KEY, "
                "originator_id uuid NOT NULL, originator_version bigint NOT NULL, "
                "digest bytea NOT NULL, link bytea NOT NULL, position bigint NOT NULL)"
            ).format(self.table("audit_seal"))
        ]

    def seal(self, rows: Sequence[NotificationRow], tracking: Tracking) -> bool:
        """Extend the chain with `rows` (the next notifications, in order)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key(),))
            seen = self._max_tracking_id(tracking.application_name, curs)
            if seen is not None and seen >= tracking.notification_id:
                return False
            if seen is not None:
                # Another sealer committed part of `rows` since they were read (it
                # read a nearer head): extend its chain with the rest only.
                rows = [row for row in rows if row[0] > seen]
            curs.execute(
                SQL("SELECT link, position FROM {} ORDER BY notification_id DESC LIMIT 1").format(
                    self.table("audit_seal")
                )
            )
            last = curs.fetchone()
            link, position = (bytes(last["link"]), last["position"]) if last else (GENESIS, 0)
            sealed = []
            for nid, originator_id, version, topic, state in rows:
                digest = event_digest(nid, topic, originator_id, version, state)
                link = chain(link, digest)
                position += 1
                sealed.append((nid, originator_id, version, digest, link, position))
            if sealed:
                curs.executemany(
                    SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(
                        self.table("audit_seal")
                    ),
                    sealed,
                )
            self._insert_tracking(curs, tracking)
        return True

    def head(self) -> SealHead:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT notification_id, link, position FROM {} "
                    "ORDER BY notification_id DESC LIMIT 1"
                ).format(self.table("audit_seal"))
            )
            row = curs.fetchone()
        if row is None:
            return SealHead(0, GENESIS.hex(), 0)
        return SealHead(row["notification_id"], bytes(row["link"]).hex(), row["position"])

    def sealed_rows(self, start: int) -> Iterator[tuple[int, bytes, bytes, int]]:
        """(notification id, digest, link, position) from `start`, in order, in pages."""
        statement = SQL(
            "SELECT notification_id, digest, link, position FROM {} "
            "WHERE notification_id >= %s ORDER BY notification_id LIMIT %s"
        ).format(self.table("audit_seal"))
        position = start
        while True:
            with self.datastore.transaction(commit=False) as curs:
                curs.execute(statement, (position, PAGE_SIZE))
                rows = curs.fetchall()
            for r in rows:
                yield r["notification_id"], bytes(r["digest"]), bytes(r["link"]), r["position"]
            if len(rows) < PAGE_SIZE:
                return
            position = rows[-1]["notification_id"] + 1

    def link_before(self, notification_id: int) -> tuple[bytes, int]:
        """The chain link and count just before `notification_id` (genesis at the start)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT link, position FROM {} WHERE notification_id < %s "
                    "ORDER BY notification_id DESC LIMIT 1"
                ).format(self.table("audit_seal")),
                (notification_id,),
            )
            row = curs.fetchone()
        return (bytes(row["link"]), row["position"]) if row else (GENESIS, 0)


def seal_up_to_head(app: Billing, view: AuditSealView) -> int:
    """Seal every notification not yet sealed; return the head position."""
    head = app.queries.head()
    position = view.max_tracking_id(app.name) or 0
    while position < head:
        rows = list(_page(app, position + 1, head))
        last = rows[-1][0] if len(rows) == PAGE_SIZE else head
        view.seal(rows, Tracking(app.name, last))
        position = last
    return head


def _page(app: Billing, first: int, last: int) -> Iterator[NotificationRow]:
    for count, row in enumerate(app.queries.notification_rows(first, last, PAGE_SIZE), 1):
        yield row
        if count == PAGE_SIZE:
            return


def verify(app: Billing, view: AuditSealView, start: int = 1) -> Verification:
    """Recompute the chain from the stored events and compare it with the seal."""
    head = view.head()
    link, count = view.link_before(start)
    log = app.queries.notification_rows(
        start, max(app.queries.head(), head.notification_id), PAGE_SIZE
    )
    sealed = view.sealed_rows(start)
    entry = next(log, None)
    seal = next(sealed, None)
    checked = unsealed = 0
    while entry is not None or seal is not None:
        if entry is not None and (seal is None or entry[0] < seal[0]):
            if entry[0] > head.notification_id:
                unsealed += 1
                entry = next(log, None)
                continue
            return _failed(checked, head, entry[0], "is in the log but was never sealed: "
                           "an event was inserted after the log was sealed")  # fmt: skip
        if seal is not None and (entry is None or seal[0] < entry[0]):
            return _failed(checked, head, seal[0], "was sealed but is missing from the log: "
                           "an event was deleted")  # fmt: skip
        assert entry is not None and seal is not None
        nid, originator_id, version, topic, state = entry
        digest = event_digest(nid, topic, originator_id, version, state)
        if digest != seal[1]:
            return _failed(checked, head, nid, f"the stored event ({topic.rsplit(':', 1)[-1]} "
                           f"v{version} of {originator_id}) no longer matches its seal: "
                           "its bytes were altered")  # fmt: skip
        link = chain(link, digest)
        count += 1
        if link != seal[2] or count != seal[3]:
            return _failed(checked, head, nid, "the seal's chain link does not follow from "
                           "the events before it: the seal itself was rewritten")  # fmt: skip
        checked += 1
        entry, seal = next(log, None), next(sealed, None)
    return Verification(True, checked, head, None, unsealed)


def _failed(checked: int, head: SealHead, nid: int, problem: str) -> Verification:
    return Verification(False, checked, head, Finding(nid, problem), 0)
