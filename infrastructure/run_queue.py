"""A bill run's batches as work on NATS JetStream, shared by any number of workers.

The stream ``<PREFIX>_RUNS`` (BILLRUN_NATS_PREFIX upper-cased; ``BILLING_RUNS``) is a
work queue on ``<prefix>-runs.>``: each run has its own subject
(``<prefix>-runs.<run uuid hex>``, the run id itself may hold dots or spaces), each
message orders one batch of the run's billing phase (`BatchOrder`), and one durable
pull consumer (``<durable prefix>-run-batches``) is shared by every `billrun worker`
of the deployment, so the server hands each batch to one worker at a time. A worker
that holds a batch tells the server it is still at work every third of the ack wait
(`in_progress`); one that dies stops saying so, and its batch is redelivered to
another after BILLRUN_BATCH_ACK_WAIT seconds. The queue only distributes work:
what a batch bills, and in which order the batches commit, the event store decides
(application/runs/batch_worker.py).

This module knows nothing of bill runs beyond the order's fields: the handler that
executes a batch is handed in by the composition root (entrypoints/worker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from uuid import NAMESPACE_URL, uuid5

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from infrastructure.messaging import DUPLICATE_WINDOW_S, StreamNames, connect

log = logging.getLogger(__name__)

MAX_DELIVER = 10
"""Deliveries of one batch before the server drops it. A batch that fails every
time is a bug, the same for every worker; the run's coordinator then bills it
itself after its patience and stops on the error (application/runs/dispatch.py)."""


@dataclass(frozen=True)
class BatchOrder:
    """One batch of a run's billing phase: the accounts opened after notification
    `after`, `size` of them at most, the last at notification `end`, as the run's
    coordinator counted them from the run's cursor. `dispatch` is the run's version
    when it was handed out: a new dispatch (a coordinator started again) gets new
    message ids, where a repeated one is dropped by the server."""

    run_id: str
    after: int
    end: int
    size: int
    dispatch: int

    @property
    def message_id(self) -> str:
        return f"{self.run_id}:{self.dispatch}:{self.after}"

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> BatchOrder:
        return cls(**json.loads(data))


@dataclass(frozen=True)
class RunQueueNames:
    """The work queue's stream, subject prefix and shared durable of one deployment."""

    stream: str
    subject_prefix: str
    durable: str

    @classmethod
    def of(cls, names: StreamNames) -> RunQueueNames:
        """Derived from the deployment's event stream names (BILLRUN_NATS_PREFIX), so
        deployments and tests sharing a server never share a queue."""
        return cls(
            stream=f"{names.stream}_RUNS",
            subject_prefix=f"{names.subject_prefix}-runs",
            durable=f"{names.durable_prefix}-run-batches",
        )

    def subject(self, run_id: str) -> str:
        return f"{self.subject_prefix}.{uuid5(NAMESPACE_URL, 'billrun-run:' + run_id).hex}"


def run_queue_config(names: RunQueueNames) -> StreamConfig:
    return StreamConfig(
        name=names.stream,
        description="billrun: bill-run batches waiting for a worker (work queue)",
        subjects=[f"{names.subject_prefix}.>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.WORK_QUEUE,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


def consumer_config(names: RunQueueNames, ack_wait: float) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=names.durable,
        filter_subject=f"{names.subject_prefix}.>",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=MAX_DELIVER,
        max_ack_pending=-1,
    )


async def ensure_run_queue(js: JetStreamContext, names: RunQueueNames, ack_wait: float) -> None:
    """Create the work-queue stream and its shared consumer, or bring them to this
    configuration. Idempotent; every worker and coordinator calls it at start."""
    config = run_queue_config(names)
    try:
        await js.stream_info(names.stream)
        await js.update_stream(config)
    except NotFoundError:
        with contextlib.suppress(BadRequestError):  # another process created it meanwhile
            await js.add_stream(config)
    await js.add_consumer(names.stream, consumer_config(names, ack_wait))


async def publish_orders(
    url: str, names: RunQueueNames, orders: list[BatchOrder], ack_wait: float
) -> None:
    """Put the orders on the run's subject, each with its message id, and wait for
    the server to store them all."""
    nc = await connect(url, name="billrun-run-dispatch", reconnect=False)
    try:
        js = nc.jetstream()
        await ensure_run_queue(js, names, ack_wait)
        acks = [
            js.publish(
                names.subject(order.run_id),
                order.encode(),
                stream=names.stream,
                headers={"Nats-Msg-Id": order.message_id},
            )
            for order in orders
        ]
        await asyncio.gather(*acks)
    finally:
        await nc.close()


BatchHandler = Callable[[BatchOrder], str]
"""Executes one order (blocking; run in a thread) and says what became of it."""


async def work_batches(
    url: str,
    names: RunQueueNames,
    handle: BatchHandler,
    stop: asyncio.Event,
    ack_wait: float,
    started: asyncio.Event | None = None,
) -> None:
    """Take the deployment's run batches one at a time until `stop`: each is handled
    in a thread while the server is told every third of `ack_wait` that the worker
    is still at it, then acknowledged. A handler that raises has its batch given
    back (nak, redelivered after a pause); one killed never acknowledges, and the
    server redelivers after `ack_wait`."""
    nc = await connect(url, name="billrun-run-batches")
    try:
        js = nc.jetstream()
        await ensure_run_queue(js, names, ack_wait)
        subscription = await js.pull_subscribe_bind(names.durable, stream=names.stream)
        if started is not None:
            started.set()
        while not stop.is_set():
            try:
                messages = await subscription.fetch(1, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.Error, OSError) as error:
                # NATS is away: nats-py reconnects; the batches wait on the server.
                log.debug("run batches: fetch failed (%s); retrying", error)
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                await _work_one(message, handle, ack_wait)
    finally:
        # Closing while NATS is down fails on the socket: nothing is held then
        # (an unacknowledged batch is redelivered), and the worker's own report
        # of the outage is the one to show.
        with contextlib.suppress(nats.errors.Error, OSError):
            await nc.close()


async def _work_one(message: Msg, handle: BatchHandler, ack_wait: float) -> None:
    order = BatchOrder.decode(message.data)
    log.info("run %s: took the batch after %d (delivery %d)",
             order.run_id, order.after, message.metadata.num_delivered)  # fmt: skip
    heartbeat = asyncio.create_task(_keep_in_progress(message, ack_wait / 3))
    try:
        what = await asyncio.to_thread(handle, order)
    except Exception:
        log.exception("run %s: batch after %d failed; handing it back", order.run_id, order.after)
        heartbeat.cancel()
        with contextlib.suppress(nats.errors.Error, OSError):  # unacked: redelivered
            await message.nak(delay=ack_wait / 3)
        return
    heartbeat.cancel()
    with contextlib.suppress(nats.errors.Error, OSError):  # unacked: found billed next time
        await message.ack()
    log.info("run %s: batch after %d: %s", order.run_id, order.after, what)


async def _keep_in_progress(message: Msg, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(nats.errors.Error):
            await message.in_progress()


async def delete_run_queue(url: str, names: RunQueueNames) -> None:
    """Drop the queue (tests and benchmarks that made their own)."""
    nc = await connect(url, name="billrun-run-queue-cleanup", reconnect=False)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(names.stream)
    finally:
        await nc.close()
