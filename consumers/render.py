"""Render: on `InvoiceClosed`, render the invoice to PDF and UBL XML and record
`InvoiceRendered` through the application (which makes a redelivery harmless)."""

from __future__ import annotations

import asyncio

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.js.api import ConsumerConfig

from consumers.dead_letter import ACK_WAIT_S, RetryPolicy, dead_letter_middleware
from consumers.services import ConsumerServices
from consumers.topology import Topology
from domain.invoice import InvoiceClosed

CONSUMER = "render"


def render_router(
    services: ConsumerServices, topology: Topology, policy: RetryPolicy
) -> NatsRouter:
    router = NatsRouter(
        middlewares=[dead_letter_middleware(topology.dead_letters, policy, CONSUMER)]
    )

    @router.subscriber(
        topology.subject("invoice", "InvoiceClosed"),
        stream=JStream(name=topology.stream, declare=False),
        durable=topology.durable(CONSUMER),
        pull_sub=PullSub(batch_size=2, timeout=5.0),
        config=ConsumerConfig(ack_wait=ACK_WAIT_S, max_deliver=policy.max_attempts + 2),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="render invoice",
        description="Renders each closed invoice to PDF and UBL 2.1 XML and records "
        "InvoiceRendered; a redelivered InvoiceClosed renders nothing new.",
    )
    async def render_invoice(event: InvoiceClosed) -> None:
        await asyncio.to_thread(services.render, event.originator_id, event.run_id)

    return router
