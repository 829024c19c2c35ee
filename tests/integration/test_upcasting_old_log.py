"""The committed old log (tests/golden, written before receivables events had a
class version) loads through today's mapper: every receivables event that gained
`account_id`/`currency` at version 2 comes back with None, nothing else changes.
(That its aggregates load and its public messages are unchanged is
tests/integration/test_event_log_fixture.py.)"""

from __future__ import annotations

import orjson
from eventsourcing.persistence import StoredEvent

from application.shared.app import Billing
from domain.receivables import events
from infrastructure.persistence import PydanticMapper
from tests.golden.event_log import load_event_log
from tests.integration.helpers import EventLog


def test_old_receivables_events_upcast_with_none(billing: Billing, database_url: str) -> None:
    load_event_log(database_url)
    mapper: PydanticMapper = billing.mapper  # type: ignore[assignment]
    upcast: dict[str, int] = {}
    with EventLog(database_url) as log:
        rows = log.conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM billing_events "
            "WHERE topic LIKE 'domain.receivables:%' ORDER BY notification_id"
        ).fetchall()
    for row in rows:
        stored = StoredEvent(
            row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])
        )
        assert "class_version" not in orjson.loads(stored.state)
        event = mapper.to_domain_event(stored)
        if isinstance(event, events.AccountEvent):
            assert event.account_id is None
            if isinstance(event, events.MoneyEvent):
                assert event.currency is None
            upcast[type(event).__name__] = upcast.get(type(event).__name__, 0) + 1
    assert {"InvoicePosted", "PaymentReceived", "CollectionAttempted"} <= set(upcast), upcast
