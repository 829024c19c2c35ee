"""Deliver: once an invoice's PDF is rendered, deliver it by its bill group's
channel and record `InvoiceDelivered` (a redelivery sends nothing twice)."""

from __future__ import annotations

import asyncio

from faststream.nats import NatsRouter

from consumers.dead_letter import RetryPolicy
from consumers.services import ConsumerServices
from consumers.subscription import durable_subscriber
from consumers.topology import Topology
from domain.invoice import InvoiceRendered

CONSUMER = "deliver"


def deliver_router(
    services: ConsumerServices, topology: Topology, policy: RetryPolicy
) -> NatsRouter:
    router, subscribe = durable_subscriber(
        topology,
        policy,
        CONSUMER,
        topology.subject("invoice", "InvoiceRendered"),
        "Delivers an invoice once its PDF is rendered, by the bill group's channel "
        "(email, file or none), and records InvoiceDelivered.",
    )

    @subscribe
    async def deliver_invoice(event: InvoiceRendered) -> None:
        if event.format != "pdf":
            return
        await asyncio.to_thread(services.deliver, event.originator_id)

    return router
