"""Deliver: once an invoice's PDF is rendered, deliver it by its bill group's
channel and record `InvoiceDelivered` (a redelivery sends nothing twice). An
invoice whose run requires approval is skipped until it is approved; its
`InvoiceApproved` then delivers it (an invoice approved before it was rendered
goes out on its `InvoiceRendered`, as both paths call the same idempotent
command)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from faststream.nats import NatsRouter

from consumers.services import ConsumerServices
from consumers.subscription import Subscriptions
from infrastructure.contract.invoicing import InvoiceApprovedV1, InvoiceRenderedV1

CONSUMER = "deliver"
APPROVED_CONSUMER = "deliver-approved"


def deliver_router(services: ConsumerServices, subscriptions: Subscriptions) -> NatsRouter:
    router, subscribe = subscriptions.durable(
        CONSUMER,
        "invoice",
        "InvoiceRendered",
        "Delivers an invoice once its PDF is rendered, by the bill group's channel "
        "(email, file or none), and records InvoiceDelivered.",
    )

    @subscribe
    async def deliver_invoice(event: InvoiceRenderedV1) -> None:
        if event.format != "pdf":
            return
        await asyncio.to_thread(services.deliver, UUID(event.invoice_id))

    approved, subscribe_approved = subscriptions.durable(
        APPROVED_CONSUMER,
        "invoice",
        "InvoiceApproved",
        "Delivers an invoice when it is approved (runs that require approval), once "
        "its PDF is rendered; records InvoiceDelivered.",
    )

    @subscribe_approved
    async def deliver_approved_invoice(event: InvoiceApprovedV1) -> None:
        await asyncio.to_thread(services.deliver, UUID(event.invoice_id))

    router.include_router(approved)
    return router
