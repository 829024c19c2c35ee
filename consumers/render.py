"""Render: on `InvoiceClosed` (or `InvoiceReleased`, for an invoice held until a
run reached its bill day), render the invoice to PDF and UBL XML and record
`InvoiceRendered` through the application (which makes a redelivery harmless)."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsRouter

from consumers.dead_letter import RetryPolicy
from consumers.services import ConsumerServices
from consumers.subscription import durable_subscriber
from consumers.topology import Topology
from domain.invoicing.events import InvoiceClosed, InvoiceReleased

CONSUMER = "render"
RELEASED_CONSUMER = "render-released"


def render_router(
    services: ConsumerServices, topology: Topology, policy: RetryPolicy
) -> NatsRouter:
    router, subscribe = durable_subscriber(
        topology,
        policy,
        CONSUMER,
        topology.subject("invoice", "InvoiceClosed"),
        "Renders each closed invoice to PDF and UBL 2.1 XML and records InvoiceRendered; "
        "a redelivered InvoiceClosed renders nothing new.",
    )

    @subscribe
    async def render_invoice(event: InvoiceClosed) -> None:
        await asyncio.to_thread(services.render, event.originator_id)

    released, subscribe_released = durable_subscriber(
        topology,
        policy,
        RELEASED_CONSUMER,
        topology.subject("invoice", "InvoiceReleased"),
        "Renders an invoice that was held until a run reached its invoicer's bill day.",
    )

    @subscribe_released
    async def render_released_invoice(event: InvoiceReleased) -> None:
        await asyncio.to_thread(services.render, event.originator_id)

    router.include_router(released)
    return router
