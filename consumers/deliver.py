"""Deliver: once an invoice's PDF is rendered, deliver it by its bill group's
channel and record `InvoiceDelivered` (a redelivery sends nothing twice)."""

from __future__ import annotations

import asyncio

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.js.api import ConsumerConfig

from consumers.dead_letter import ACK_WAIT_S, RetryPolicy, dead_letter_middleware
from consumers.services import ConsumerServices
from consumers.topology import Topology
from domain.invoice import InvoiceRendered

CONSUMER = "deliver"


def deliver_router(
    services: ConsumerServices, topology: Topology, policy: RetryPolicy
) -> NatsRouter:
    router = NatsRouter(
        middlewares=[dead_letter_middleware(topology.dead_letters, policy, CONSUMER)]
    )

    @router.subscriber(
        topology.subject("invoice", "InvoiceRendered"),
        stream=JStream(name=topology.stream, declare=False),
        durable=topology.durable(CONSUMER),
        pull_sub=PullSub(batch_size=2, timeout=5.0),
        config=ConsumerConfig(ack_wait=ACK_WAIT_S, max_deliver=policy.max_attempts + 2),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="deliver invoice",
        description="Delivers an invoice once its PDF is rendered, by the bill group's "
        "channel (email, file or none), and records InvoiceDelivered.",
    )
    async def deliver_invoice(event: InvoiceRendered) -> None:
        if event.format != "pdf":
            return
        await asyncio.to_thread(services.deliver, event.originator_id, event.run_id)

    return router
