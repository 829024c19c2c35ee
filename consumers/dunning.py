"""Dunning notices: when a bill run applies a dunning stage that notifies
(`DunningApplied` on an account's receivables), send the account its payment
reminder by its bill group's channel and record `DunningNoticeSent` (a
redelivery sends nothing twice)."""

from __future__ import annotations

import asyncio
from uuid import UUID

from faststream.nats import NatsRouter

from consumers.services import ConsumerServices
from consumers.subscription import Subscriptions
from domain.receivables.receivables import receivables_uuid
from infrastructure.contract.receivables import DunningAppliedV1

CONSUMER = "dunning-notice"


def dunning_router(services: ConsumerServices, subscriptions: Subscriptions) -> NatsRouter:
    router, subscribe = subscriptions.durable(
        CONSUMER,
        "receivables",
        "DunningApplied",
        "Sends the dunning notice of a stage that notifies, by the bill group's channel "
        "(email, file or none), and records DunningNoticeSent once.",
        title="dunning-notice receivables",
    )

    @subscribe
    async def send_dunning_notice(event: DunningAppliedV1) -> None:
        if "notify" not in event.actions:
            return
        await asyncio.to_thread(
            services.send_dunning_notice,
            receivables_uuid(event.account_id),
            UUID(event.invoice_id),
            event.stage,
        )

    return router
