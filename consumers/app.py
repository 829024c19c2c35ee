"""The FastStream application of billrun's consumers (the public AsyncAPI document
describes the events, not these internal subscriptions: infrastructure.contract.asyncapi)."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker

from consumers.dead_letter import RetryPolicy
from consumers.deliver import deliver_router
from consumers.dunning import dunning_router
from consumers.render import render_router
from consumers.services import ConsumerServices
from consumers.subscription import Subscriptions
from consumers.topology import Topology


class _EmptyFetchIsNotAnError(logging.Filter):
    """nats-py 2.16 ends a pull fetch that found nothing with a plain
    `asyncio.TimeoutError` in one timing window, where FastStream 0.7 only expects
    `nats.errors.TimeoutError`: its supervisor logs an ERROR and restarts the
    consumer's fetch loop, which is all that is needed (no message was fetched).
    The record is kept at DEBUG (shown only when DEBUG logging is on), so a
    worker's log does not cry wolf."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TimeoutError) and "raised an exception, retrying" in str(record.msg):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # Handlers do not look at the level again: drop it unless DEBUG is on.
            return self.logger.isEnabledFor(logging.DEBUG)
        return True


BROKER_LOGGER_NAME = "consumers.broker"


def broker_logger() -> logging.Logger:
    """The logger FastStream logs the consumers' broker to, with its filter.

    Attached when a broker is built rather than when this module is imported, so
    that importing the consumers (for the AsyncAPI document, or a test) changes no
    logging; a logger is one per process, so the filter is attached once however
    many brokers are built.
    """
    logger = logging.getLogger(BROKER_LOGGER_NAME)
    if not any(isinstance(f, _EmptyFetchIsNotAnError) for f in logger.filters):
        logger.addFilter(_EmptyFetchIsNotAnError(logger))
    return logger


def build_broker(
    nats_url: str,
    services: ConsumerServices,
    topology: Topology | None = None,
    policy: RetryPolicy | None = None,
) -> NatsBroker:
    topology = topology or Topology()
    policy = policy or RetryPolicy()
    # FastStream logs every message received and processed: useful when debugging
    # a consumer, noise in a worker's log, so only a DEBUG logger shows them.
    # Our own logger, so the process's logging setup (-v or not) governs FastStream's
    # service messages too, instead of FastStream's own INFO handler.
    broker = NatsBroker(
        nats_url,
        graceful_timeout=30.0,
        logger=broker_logger(),
        log_level=logging.DEBUG,
    )
    subscriptions = Subscriptions(topology, policy)
    broker.include_router(render_router(services, subscriptions))
    broker.include_router(deliver_router(services, subscriptions))
    broker.include_router(dunning_router(services, subscriptions))
    return broker
