"""The audit seal: a SHA-256 hash chain over the notification log, in commit order.

For each stored event (notification) the seal keeps

    digest = SHA-256( "<notification id>\\n<topic>\\n<originator id>\\n<version>\\n" + state bytes )
    link   = SHA-256( previous link + digest )        (the first previous link is 32 zero bytes)

so the last link (the head) commits to every byte of every event before it, in
order. `verify` recomputes digests and links from the stored events and reports
every notification where the log no longer matches its seal: an altered event
(digest differs), a deleted one (sealed but gone), an inserted one (in the log
below the sealed head but never sealed, or at an id below 1), and gaps or doubles
in an aggregate's versions. The chain has no secret: someone with write access
can recompute it. Heads signed with a key the database never holds (`billrun
audit head --key-file`) and checked by `verify --anchor` protect against them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed

from application.shared.app import Billing
from infrastructure.event_store import HashedRow, NotificationRow
from projections.view import View

GENESIS = bytes(32)
PAGE_SIZE = 5000

SealRow = tuple[int, bytes, bytes, int]
"""(notification id, digest, link, position) of the seal."""


def event_digest(
    nid: int, topic: str, originator_id: UUID | str, version: int, state: bytes
) -> bytes:
    """`originator_id` as a `UUID` or its text (the same in the header)."""
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
    """The first finding (in log order), None when the log matches its seal."""
    unsealed: int
    findings: tuple[Finding, ...] = ()
    """The first MAX_FINDINGS findings."""
    findings_count: int = 0
    """Every finding, counted."""
    link_at: str | None = None
    """The link recomputed at the notification `verify` was asked about (`at`)."""

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
            "findings": [
                {"notification_id": f.notification_id, "problem": f.problem} for f in self.findings
            ],
            "findings_count": self.findings_count,
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

    def sealed_rows(self, start: int) -> Iterator[SealRow]:
        """(notification id, digest, link, position) from `start`, in order, in pages
        of plain tuples over the binary protocol (dict rows cost as much as the read)."""
        return itertools.chain.from_iterable(self._sealed_pages(start))

    def _sealed_pages(self, start: int) -> Iterator[list[SealRow]]:
        statement = SQL(
            "SELECT notification_id, digest, link, position FROM {} "
            "WHERE notification_id >= %s ORDER BY notification_id LIMIT %s"
        ).format(self.table("audit_seal"))
        position = start
        while True:
            with (
                self.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row, binary=True) as curs,
            ):
                curs.execute(statement, (position, PAGE_SIZE), prepare=True)
                rows = curs.fetchall()
            yield rows
            if len(rows) < PAGE_SIZE:
                return
            position = rows[-1][0] + 1

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


ANCHOR_ALGORITHM = "HMAC-SHA256"


def anchor_message(head: SealHead) -> bytes:
    """What an anchor's signature covers: the position, the count and the link."""
    return f"billrun-audit-head\n{head.notification_id}\n{head.count}\n{head.link}".encode()


def sign_head(head: SealHead, key: bytes) -> str:
    """HMAC-SHA256 of the head with a key the database never holds: someone who can
    rewrite the log and recompute the whole seal still cannot make a signed anchor
    agree with it."""
    return hmac.new(key, anchor_message(head), hashlib.sha256).hexdigest()


def signature_ok(head: SealHead, signature: str, key: bytes) -> bool:
    return hmac.compare_digest(sign_head(head, key), signature)


MAX_FINDINGS = 100
"""Findings kept (the first ones, in log order); all of them are counted."""

LOWEST = -(2**63)
"""The smallest bigint: where the walk starts to see rows with ids below 1."""


def verify(
    app: Billing, view: AuditSealView, start: int = 1, at: int | None = None
) -> Verification:
    """Recompute the chain from the stored events and compare it with the seal, in
    one pass over the log and the seal together, reporting every finding.

    Besides each sealed event (digest and link), the walk checks that every row of
    the table is accounted for: rows with ids below 1 (never written by billrun,
    never sealed), rows in the log below the sealed head that were never sealed,
    sealed rows gone from the log, the seal's count against the rows it holds, and
    each aggregate's versions running 1, 2, 3... in commit order with no gap or
    double. `at`: also return the link recomputed at that notification, to compare
    with a head anchored there.
    """
    head = view.head()
    walk = _Walk(head, start, at, *view.link_before(start))
    last = max(app.queries.head(), head.notification_id)
    # Rows below 1 are read whatever `start` is: the index makes it one cheap probe.
    below = app.queries.hashed_rows(LOWEST, 0, PAGE_SIZE)
    walk.run(itertools.chain(below, app.queries.hashed_rows(start, last, PAGE_SIZE)),
             view.sealed_rows(start))  # fmt: skip
    findings = walk.findings
    if start == 1 and walk.seal_rows != head.count:
        findings.add(head.notification_id, f"the seal's head counts {head.count} events but "
                     f"the seal holds {walk.seal_rows}: the seal itself was rewritten")  # fmt: skip
    return Verification(
        ok=not findings.count,
        checked=walk.checked,
        head=head,
        finding=findings.kept[0] if findings.kept else None,
        unsealed=walk.unsealed,
        findings=tuple(findings.kept),
        findings_count=findings.count,
        link_at=walk.link_at,
    )


class _Walk:
    """The log and the seal walked together in notification-id order: each row of
    either is matched with the other's row of the same id or reported."""

    def __init__(self, head: SealHead, start: int, at: int | None, link: bytes, count: int) -> None:
        self.head, self.start, self.at = head, start, at
        self.previous_link, self.previous_count = link, count
        self.findings = _Findings()
        self.versions: dict[str, int] = {}
        self.checked = self.unsealed = self.seal_rows = 0
        self.link_at: str | None = None

    def run(self, log: Iterator[HashedRow], sealed: Iterator[SealRow]) -> None:
        entry, seal = next(log, None), next(sealed, None)
        while entry is not None and seal is not None:
            if entry[0] == seal[0]:
                self.sealed_event(entry, seal)
                entry, seal = next(log, None), next(sealed, None)
            elif entry[0] < seal[0]:
                self.log_only(entry)
                entry = next(log, None)
            else:
                self.seal_only(seal)
                seal = next(sealed, None)
        # One of the two ran out: whatever the other still holds has no match.
        if entry is not None:
            for rest in itertools.chain((entry,), log):
                self.log_only(rest)
        if seal is not None:
            for left in itertools.chain((seal,), sealed):
                self.seal_only(left)

    def sealed_event(self, entry: HashedRow, seal: SealRow) -> None:
        """A stored event and its seal row: nearly every row, so kept lean."""
        nid, originator_id, version, topic, state = entry
        digest = event_digest(nid, topic, originator_id, version, state)
        link = chain(self.previous_link, digest)
        if digest != seal[1]:
            self.findings.add(nid, f"the stored event ({_event(entry)}) no longer matches "
                              "its seal: its bytes were altered")  # fmt: skip
        elif link != seal[2] or self.previous_count + 1 != seal[3]:
            self.findings.add(nid, "the seal's chain link does not follow from the events "
                              "before it: the seal itself was rewritten")  # fmt: skip
        if nid == self.at:
            self.link_at = link.hex()
        # The next version of an aggregate already seen is checked here; a first
        # version, a gap or a double goes through the full rule.
        before = self.versions.get(originator_id)
        if before is not None and version == before + 1:
            self.versions[originator_id] = version
        else:
            _versions(self.versions, entry, self.findings, self.start)
        # Each link is checked against the one stored before it, so one tampered
        # row is one finding, not one for every row after it.
        self.previous_link, self.previous_count = seal[2], seal[3]
        self.seal_rows += 1
        self.checked += 1

    def log_only(self, entry: HashedRow) -> None:
        nid = entry[0]
        if nid < 1:
            self.findings.add(nid, f"is below 1, where billrun never writes ({_event(entry)}): "
                              "an event was inserted and is refused when loaded")  # fmt: skip
            return
        if nid > self.head.notification_id:
            self.unsealed += 1
        else:
            self.findings.add(nid, f"is in the log but was never sealed ({_event(entry)}): "
                              "an event was inserted after the log was sealed")  # fmt: skip
        _versions(self.versions, entry, self.findings, self.start)

    def seal_only(self, seal: SealRow) -> None:
        self.findings.add(seal[0], "was sealed but is missing from the log: an event was deleted")
        self.previous_link, self.previous_count = seal[2], seal[3]
        self.seal_rows += 1


class _Findings:
    def __init__(self) -> None:
        self.kept: list[Finding] = []
        self.count = 0

    def add(self, nid: int, problem: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_FINDINGS:
            self.kept.append(Finding(nid, problem))


def _event(row: HashedRow) -> str:
    _, originator_id, version, topic, _ = row
    return f"{topic.rsplit(':', 1)[-1]} v{version} of {originator_id}"


def _versions(versions: dict[str, int], row: HashedRow, findings: _Findings, start: int) -> None:
    """Each aggregate's versions must run 1, 2, 3... in commit order (the library
    writes them so): a gap or a double is an event deleted or inserted, even where
    the seal was rebuilt to match. From the middle (`start` > 1) an aggregate's
    first version seen is taken as it is."""
    nid, originator_id, version, _, _ = row
    before = versions.get(originator_id)
    expected = 1 if before is None else before + 1
    if version != expected and (before is not None or start == 1):
        problem = "a version is missing before it" if version > expected else "a double"
        findings.add(nid, f"{_event(row)} follows version {before or 0}: {problem} "
                     "(an event was deleted or inserted)")  # fmt: skip
    versions[originator_id] = max(version, before or 0)
