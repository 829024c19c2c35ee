"""Render: on `InvoiceClosed`, render the invoice to PDF and UBL XML and record
`InvoiceRendered` through the application (which makes a redelivery harmless)."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsRouter

from consumers.dead_letter import RetryPolicy
from consumers.services import ConsumerServices
from consumers.subscription import durable_subscriber
from consumers.topology import Topology
from domain.invoice import InvoiceClosed

CONSUMER = "render"


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

    return router
