"""A message that went out, as the invoice's delivery and a dunning notice both
record it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Dispatch:
    """By which channel a message went, to whom, under which message id, and where
    a copy was filed (file channel), as the event that records it states them."""

    channel: str
    recipient: str | None
    message_id: str
    location: str | None

    def fields(self) -> dict[str, str | None]:
        return asdict(self)
