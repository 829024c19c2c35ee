"""How every billrun consumer subscribes: a durable JetStream pull consumer with
NACK_ON_ERROR and its own dead-letter middleware, on a router of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsRouter, PullSub
from nats.js.api import ConsumerConfig

from consumers.dead_letter import ACK_WAIT_S, RetryPolicy, dead_letter_middleware
from consumers.topology import Topology


def durable_subscriber(
    topology: Topology,
    policy: RetryPolicy,
    consumer: str,
    subject: str,
    description: str,
    title: str | None = None,
) -> tuple[NatsRouter, Callable[[Any], Any]]:
    """A router for one reaction, and the decorator that subscribes its handler
    (`title` in the AsyncAPI document: `<consumer> invoice` unless given)."""
    router = NatsRouter(
        middlewares=[dead_letter_middleware(topology.dead_letters, policy, consumer)]
    )
    subscribe = router.subscriber(
        subject,
        stream=JStream(name=topology.stream, declare=False),
        durable=topology.durable(consumer),
        pull_sub=PullSub(batch_size=2, timeout=5.0),
        config=ConsumerConfig(ack_wait=ACK_WAIT_S, max_deliver=policy.max_attempts + 2),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=title or f"{consumer} invoice",
        description=description,
    )
    return router, subscribe


@dataclass(frozen=True)
class Subscriptions:
    """What every reaction subscribes with: the streams' topology and the retry policy."""

    topology: Topology
    policy: RetryPolicy

    def durable(
        self, consumer: str, aggregate: str, event: str, description: str, title: str | None = None
    ) -> tuple[NatsRouter, Callable[[Any], Any]]:
        """`durable_subscriber` for `consumer`, on the subject of `aggregate`'s `event`."""
        subject = self.topology.subject(aggregate, event)
        return durable_subscriber(self.topology, self.policy, consumer, subject, description, title)
