"""Stored events to NATS messages (subject, body, headers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from infrastructure.messaging import subject_for
from infrastructure.relay.log import RelayRow
from infrastructure.relay.wire import header_block


@dataclass(frozen=True, slots=True)
class Outbound:
    """One event as a NATS message."""

    notification_id: int
    subject: str
    body: bytes
    headers: dict[str, str]
    header_block: bytes
    """`headers` encoded once, as NATS sends them (see `header_block`)."""


class Encoder:
    """Stored events to NATS messages, without rebuilding the pydantic events.

    The body is the event's JSON as the event store holds it (money as strings,
    dates ISO 8601) with `originator_id` and `originator_version` in front, i.e.
    the event's `model_dump(mode="json")`. The stored state is plain orjson JSON:
    billrun configures no cipher or compressor for its event store.
    """

    def __init__(self, subject_prefix: str) -> None:
        self._prefix = subject_prefix
        self._topics: dict[str, tuple[str, str]] = {}
        self._header_names: set[str] = set()
        """Header names `header_block` has checked for this encoder."""

    def encode(self, row: RelayRow, replay_id: str | None = None) -> Outbound:
        nid, originator_id, version, topic, state = row
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = (
                subject_for(topic, self._prefix),
                topic.rpartition(":")[2],
            )
        subject, event = known
        payload: dict[str, Any] = orjson.loads(state)
        body = orjson.dumps(
            {"originator_id": originator_id, "originator_version": version, **payload}
        )
        nid_text = str(nid)
        headers = {
            "Nats-Msg-Id": nid_text if replay_id is None else f"{nid_text}:replay:{replay_id}",
            "Billrun-Notification-Id": nid_text,
            "Billrun-Aggregate-Id": originator_id,
            "Billrun-Aggregate-Version": str(version),
            "Billrun-Event": event,
        }
        timestamp = payload.get("timestamp")
        if isinstance(timestamp, str):
            headers["Billrun-Timestamp"] = timestamp
        run_id = payload.get("run_id")
        if isinstance(run_id, str):
            headers["Billrun-Run-Id"] = run_id
        if replay_id is not None:
            headers["Billrun-Replay-Id"] = replay_id
        return Outbound(nid, subject, body, headers, header_block(headers, self._header_names))
