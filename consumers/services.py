"""What the consumers ask of the application: three commands, each idempotent."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class ConsumerServices(Protocol):
    def render(self, invoice_id: UUID) -> object:
        """Render a closed invoice if its run renders; record InvoiceRendered once."""

    def deliver(self, invoice_id: UUID) -> object:
        """Deliver a rendered invoice if its run delivers; record InvoiceDelivered once."""

    def send_dunning_notice(self, receivables_id: UUID, invoice_id: UUID, stage: int) -> object:
        """Send the notice of a dunning stage that notifies; record DunningNoticeSent once."""
