"""Stored events to NATS messages: the public contract (`infrastructure.contract`)
as CloudEvents 1.0 in binary mode over NATS headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from infrastructure.contract import (
    CE_SPECVERSION,
    CONTENT_TYPE,
    NEEDS_FACTS,
    PUBLIC_FORMS,
    SELF_CONTAINED_FROM_V2,
    FactTable,
    PublicForm,
    ce_source,
    fact_table,
)
from infrastructure.contract.facts import Lookup
from infrastructure.messaging import subject_for
from infrastructure.persistence import ACTOR_KEY
from infrastructure.relay.log import RelayRow
from infrastructure.relay.wire import header_block

_VERSIONED = b'"class_version":'
"""In a stored state: the event was stored at class version 2 or later (the mapper
writes the key only then, as orjson: no space after the colon)."""

_NONE: dict[str, Any] = {}
"""The facts handed to a public form that needs none (never written to)."""


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
    """Stored events to public messages, without rebuilding the pydantic events.

    The stored state is plain orjson JSON (billrun configures no cipher or
    compressor for its event store); each public form (`PublicForm.body`) builds
    its body from it and from the aggregate's facts. A stored event without a
    public form encodes to None: it is not published, but its facts are learnt.

    Headers (docs/subscribing.md): `Nats-Msg-Id` `<source>:<notification id>` (a
    replay adds `:replay:<replay id>`), the CloudEvents attributes `ce-specversion`,
    `ce-id` (`<source>:<notification id>`, the same for a replayed copy),
    `ce-source`, `ce-type`, `ce-time` (when the event happened), `ce-subject`,
    `content-type`, and `Billrun-Notification-Id`, `Billrun-Aggregate-Id`,
    `Billrun-Aggregate-Version`, `Billrun-Run-Id` (what a run caused),
    `Billrun-Replay-Id`.
    """

    def __init__(self, subject_prefix: str, source: str, lookup: Lookup | None = None) -> None:
        self._prefix = subject_prefix
        self._source = source
        self._ce_source = ce_source(source)
        self.facts: FactTable = fact_table(lookup)
        self._topics: dict[str, tuple[str, str, PublicForm | None]] = {}
        self._header_names: set[str] = set()
        """Header names `header_block` has checked for this encoder."""

    def _known(self, topic: str) -> tuple[str, str, PublicForm | None]:
        known = self._topics.get(topic)
        if known is None:
            event = topic.rpartition(":")[2]
            known = self._topics[topic] = (
                subject_for(topic, self._prefix),
                event,
                PUBLIC_FORMS.get(event),
            )
        return known

    def prepare(self, rows: Sequence[RelayRow]) -> None:
        """Look up, in one query, the facts a page of rows needs and lacks: those of
        aggregates neither known yet nor created in this page (version 1), whose
        facts the page itself teaches in order."""
        created = {row[1] for row in rows if row[2] == 1}
        knows = self.facts.knows
        needed = {
            row[1]
            for row in rows
            if row[1] not in created and not knows(row[1]) and _needs_facts(row)
        }
        self.facts.prefetch(needed)

    def encode(self, row: RelayRow, replay_id: str | None = None) -> Outbound | None:
        nid, originator_id, version, topic, state = row
        subject, event, form = self._known(topic)
        payload: dict[str, Any] = orjson.loads(state)
        # Who wrote it stays in the event store: key ids and OS user names are not
        # part of the public contract (docs/subscribing.md, personal data).
        payload.pop(ACTOR_KEY, None)
        payload["originator_id"] = originator_id
        if form is None:
            self.facts.learn(event, originator_id, payload, nid)
            return None
        needs_facts = event in NEEDS_FACTS and not (
            event in SELF_CONTAINED_FROM_V2 and "class_version" in payload
        )
        data = form.body(payload, self.facts.get(originator_id, nid) if needs_facts else _NONE)
        self.facts.learn(event, originator_id, payload, nid)
        event_id = f"{self._source}:{nid}"
        headers = {
            "Nats-Msg-Id": event_id if replay_id is None else f"{event_id}:replay:{replay_id}",
            "ce-specversion": CE_SPECVERSION,
            "ce-id": event_id,
            "ce-source": self._ce_source,
            "ce-type": form.ce_type,
            "ce-time": payload["timestamp"],
            "ce-subject": str(data[form.subject]),
            "content-type": CONTENT_TYPE,
            "Billrun-Notification-Id": str(nid),
            "Billrun-Aggregate-Id": originator_id,
            "Billrun-Aggregate-Version": str(version),
        }
        run_id = data.get("run_id")
        if run_id is not None:
            headers["Billrun-Run-Id"] = run_id
        if replay_id is not None:
            headers["Billrun-Replay-Id"] = replay_id
        return Outbound(
            nid, subject, orjson.dumps(data), headers, header_block(headers, self._header_names)
        )


def _needs_facts(row: RelayRow) -> bool:
    """Whether the row's public body needs facts: its event lacks natural ids, or
    carries them only from class version 2 on and was stored before."""
    event = row[3].rpartition(":")[2]
    if event not in NEEDS_FACTS:
        return False
    return event not in SELF_CONTAINED_FROM_V2 or _VERSIONED not in row[4]
