"""Idempotency records: the first answer to a write sent with an Idempotency-Key.

A client that retries a write (a timeout, a dropped connection) sends the same
key again; the record makes the retry replay the first answer instead of doing
the work twice. Its id is derived from the tenant and the key (`record_uuid`), so
two requests racing with one key create the same aggregate at version 1 and the
event store lets one of them through: the record is saved in the same transaction
as the command's own events (`application/shared/idempotency.py`), which is what
makes "one key, one effect" hold across processes.

Internal bookkeeping of the HTTP API: these events have no public form, so the
relay never publishes them.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from domain.shared.errors import DomainError
from domain.shared.ids import NAMESPACE
from domain.shared.model import Aggregate, DomainEvent


class RequestAccepted(DomainEvent):
    key: str
    fingerprint: str
    """A hash of the method, path, query and body: the same key with another
    request is refused."""


class ResponseRecorded(DomainEvent):
    status: int
    body: str
    headers: dict[str, str]


def record_uuid(tenant: str, key: str) -> UUID:
    return uuid5(NAMESPACE, f"idempotency:{tenant}:{key}")


class IdempotencyRecord(Aggregate):
    kind = "idempotency"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.key = ""
        self.fingerprint = ""
        self.status: int | None = None
        self.body = ""
        self.headers: dict[str, str] = {}

    @classmethod
    def accept(cls, tenant: str, key: str, fingerprint: str, at: datetime) -> IdempotencyRecord:
        record = cls(record_uuid(tenant, key))
        record._trigger(RequestAccepted, at, key=key, fingerprint=fingerprint)
        return record

    @property
    def answered(self) -> bool:
        return self.status is not None

    def answer(self, status: int, body: str, headers: dict[str, str], at: datetime) -> None:
        if self.answered:
            raise DomainError(f"idempotency key {self.key!r} was answered already")
        self._trigger(ResponseRecorded, at, status=status, body=body, headers=headers)

    def _when_RequestAccepted(self, event: RequestAccepted) -> None:
        self.key = event.key
        self.fingerprint = event.fingerprint

    def _when_ResponseRecorded(self, event: ResponseRecorded) -> None:
        self.status = event.status
        self.body = event.body
        self.headers = dict(event.headers)
