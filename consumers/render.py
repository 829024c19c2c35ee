"""Render: on `InvoiceClosed` (or `InvoiceReleased`, for an invoice held until a
run reached its bill day), render the invoice to PDF and UBL XML and record
`InvoiceRendered` through the application (which makes a redelivery harmless)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from faststream.nats import NatsRouter

from consumers.services import ConsumerServices
from consumers.subscription import Subscriptions
from infrastructure.contract.invoicing import InvoiceClosedV1, InvoiceReleasedV1

CONSUMER = "render"
RELEASED_CONSUMER = "render-released"


def render_router(services: ConsumerServices, subscriptions: Subscriptions) -> NatsRouter:
    router, subscribe = subscriptions.durable(
        CONSUMER,
        "invoice",
        "InvoiceClosed",
        "Renders each closed invoice to PDF and UBL 2.1 XML and records InvoiceRendered; "
        "a redelivered InvoiceClosed renders nothing new.",
    )

    @subscribe
    async def render_invoice(event: InvoiceClosedV1) -> None:
        await asyncio.to_thread(services.render, UUID(event.invoice_id))

    released, subscribe_released = subscriptions.durable(
        RELEASED_CONSUMER,
        "invoice",
        "InvoiceReleased",
        "Renders an invoice that was held until a run reached its invoicer's bill day.",
    )

    @subscribe_released
    async def render_released_invoice(event: InvoiceReleasedV1) -> None:
        await asyncio.to_thread(services.render, UUID(event.invoice_id))

    router.include_router(released)
    return router
