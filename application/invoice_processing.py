"""What happens to an invoice after its run closed it: render, then deliver.

The two commands the NATS consumers call. Each honours the run's settings and is
idempotent (a rendered format is not rendered again, a delivered invoice is not
sent again), so a redelivered message does no harm.
"""

from __future__ import annotations

import logging
from uuid import UUID

from application.delivery import DeliveryOutcome, InvoiceDelivery
from application.documents import InvoiceDocuments

log = logging.getLogger(__name__)


class InvoiceProcessing:
    def __init__(self, documents: InvoiceDocuments, delivery: InvoiceDelivery) -> None:
        self.documents = documents
        self.delivery = delivery

    def render(self, invoice_id: UUID) -> None:
        documents = self.documents.render_on_close(invoice_id)
        log.info("invoice %s: %s", invoice_id, ", ".join(d.format for d in documents))

    def deliver(self, invoice_id: UUID) -> DeliveryOutcome:
        outcome = self.delivery.deliver(invoice_id)
        log.info("invoice %s: delivery %s", invoice_id, outcome.kind.value)
        return outcome
