"""What happens to an invoice after its run closed it: render, then deliver.

The two commands the NATS consumers call. Each honours the run's settings and is
idempotent (a rendered format is not rendered again, a delivered invoice is not
sent again), so a redelivered message does no harm.
"""

from __future__ import annotations

import logging
from uuid import UUID

from application.billing import Billing
from application.delivery import DeliveryOutcome, InvoiceDelivery
from application.documents import InvoiceDocuments

log = logging.getLogger(__name__)


class InvoiceProcessing:
    def __init__(
        self, billing: Billing, documents: InvoiceDocuments, delivery: InvoiceDelivery
    ) -> None:
        self.billing = billing
        self.documents = documents
        self.delivery = delivery

    def render(self, invoice_id: UUID, run_id: str) -> None:
        if not self.billing.get_run(run_id).settings.render_invoices:
            return
        documents = self.documents.render(invoice_id)
        log.info("invoice %s: %s", invoice_id, ", ".join(d.format for d in documents))

    def deliver(self, invoice_id: UUID, run_id: str) -> DeliveryOutcome:
        outcome = self.delivery.deliver(invoice_id)
        log.info("invoice %s: delivery %s", invoice_id, outcome.kind.value)
        return outcome
