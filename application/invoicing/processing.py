"""What happens to an invoice after its run closed it: render, then deliver, and
if it is not paid in time, the dunning notices.

The three commands the NATS consumers call. Each honours the run's settings and
is idempotent (a rendered format is not rendered again, a delivered invoice or a
stage's notice is not sent again), so a redelivered message does no harm.
"""

from __future__ import annotations

import logging
from uuid import UUID

from application.invoicing.delivery import DeliveryOutcome, InvoiceDelivery
from application.invoicing.documents import InvoiceDocuments
from application.receivables.dunning_notices import DunningNotices, NoticeOutcome

log = logging.getLogger(__name__)


class InvoiceProcessing:
    def __init__(
        self, documents: InvoiceDocuments, delivery: InvoiceDelivery, notices: DunningNotices
    ) -> None:
        self.documents = documents
        self.delivery = delivery
        self.notices = notices

    def render(self, invoice_id: UUID) -> None:
        documents = self.documents.render_on_close(invoice_id)
        log.info("invoice %s: %s", invoice_id, ", ".join(d.format for d in documents))

    def deliver(self, invoice_id: UUID) -> DeliveryOutcome:
        outcome = self.delivery.deliver(invoice_id)
        log.info("invoice %s: delivery %s", invoice_id, outcome.kind.value)
        return outcome

    def send_dunning_notice(
        self, receivables_id: UUID, invoice_id: UUID, stage: int
    ) -> NoticeOutcome:
        outcome = self.notices.send(receivables_id, invoice_id, stage)
        log.info(
            "invoice %s: dunning notice (stage %d) %s%s",
            invoice_id, stage, outcome.kind.value, f": {outcome.reason}" if outcome.reason else "",
        )  # fmt: skip
        return outcome
