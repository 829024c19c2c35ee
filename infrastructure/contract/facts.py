"""What the relay remembers of each aggregate to fill in a public event's natural
ids: the account, currency, run and number that only the aggregate's first events
carry (e.g. `InvoiceRendered` is stored without account or currency; its
`InvoiceOpened` has both).

Facts are learnt from the opening events as the relay encodes them, in log order.
A relay that starts mid-log (a restart, a replay) has not seen them: before
encoding a page it looks the missing aggregates' opening events up in the event
store, in one query per page (`lookup`). Memory is bounded: past `limit`
aggregates the table is emptied and refilled on demand.

Each fact remembers the notification id it was learnt at, and an event sees only
facts learnt before it: the lookup may find a later event too (an invoice's
`InvoiceClosed` while encoding its `InvoiceOpened` in a replay), and a public
body must be the same whenever it is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from infrastructure.contract.base import Facts

Opener = Callable[[dict[str, Any]], Facts]
Lookup = Callable[[list[str]], Iterable[tuple[int, str, str, bytes]]]
"""Originator ids -> their opening events as (notification id, originator id,
event name, state), in log order."""

DEFAULT_LIMIT = 500_000
"""Aggregates remembered at once: about 100 MB at worst; a 100,000-account run
touches about 300,000 (accounts, receivables, invoices)."""


class FactTable:
    def __init__(
        self, openers: Mapping[str, Opener], lookup: Lookup | None, limit: int = DEFAULT_LIMIT
    ) -> None:
        self.openers = openers
        self.lookup = lookup
        self.limit = limit
        self._facts: dict[str, _Known] = {}

    def get(self, originator_id: str, before: int) -> Facts:
        """The facts about the aggregate learnt from events before notification
        `before` (read-only: the same dict is handed out again)."""
        known = self._facts.get(originator_id)
        if known is None:
            return {}
        if known.latest < before:  # the usual case: nothing learnt from later events
            return known.values
        return {key: value for key, value in known.values.items() if known.learnt_at[key] < before}

    def learn(self, event: str, originator_id: str, payload: dict[str, Any], at: int) -> None:
        opener = self.openers.get(event)
        if opener is None:
            return
        known = self._facts.get(originator_id)
        if known is None:
            if len(self._facts) >= self.limit:
                self._facts.clear()
            known = self._facts[originator_id] = _Known()
        known.learn(opener(payload), at)

    def knows(self, originator_id: str) -> bool:
        return originator_id in self._facts

    def prefetch(self, originator_ids: Iterable[str]) -> None:
        """Look up the opening events of the aggregates not known yet."""
        missing = sorted({oid for oid in originator_ids if oid not in self._facts})
        if not missing or self.lookup is None:
            return
        for at, originator_id, event, state in self.lookup(missing):
            self.learn(event, originator_id, orjson.loads(state), at)


class _Known:
    """The facts about one aggregate and the notification id each was learnt at."""

    __slots__ = ("latest", "learnt_at", "values")

    def __init__(self) -> None:
        self.values: Facts = {}
        self.learnt_at: dict[str, int] = {}
        self.latest = 0

    def learn(self, facts: Facts, at: int) -> None:
        # A fresh dict: `get` may have handed the old one out.
        values = dict(self.values)
        for key, value in facts.items():
            if self.learnt_at.get(key, 0) <= at:
                values[key] = value
                self.learnt_at[key] = at
        self.values = values
        self.latest = max(self.latest, at)
