"""The worker: the outbox relay, the consumers, the scheduler and the manager,
in one process.

Composition root for the asynchronous side: it builds the application services
the consumers call, the relay that feeds them, and runs both, with the audit
seal kept up to date and scheduled runs queued and executed, until told to stop.
Stopping is graceful: the relay finishes its window in flight and saves its
position; the consumers finish the messages they hold (unacknowledged ones are
redelivered to the next worker); the manager stops the run in hand at its next
checkpoint and releases its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

from eventsourcing.postgres import PostgresApplicationRecorder
from nats.errors import Error as NatsError

from application.invoicing.delivery import invoice_delivery
from application.invoicing.documents import invoice_documents
from application.invoicing.processing import InvoiceProcessing
from application.receivables.dunning_notices import dunning_notices
from application.runs.batch_worker import BatchWorker
from application.runs.dispatch import BatchDispatch
from application.runs.scheduler import Manager, Pass, Scheduling
from entrypoints.runtime import Runtime
from infrastructure.messaging import (
    NamespaceConflict,
    StreamNames,
    connect,
    ensure_streams,
    stream_names,
)
from infrastructure.relay import NotificationLog, Relay, RelayError, RelayPositions
from infrastructure.run_queue import BatchOrder, RunQueueNames, publish_orders, work_batches
from projections.audit_seal import seal_up_to_head

if TYPE_CHECKING:
    from consumers.topology import Topology

log = logging.getLogger(__name__)


def invoice_processing(rt: Runtime) -> InvoiceProcessing:
    return InvoiceProcessing(
        invoice_documents(rt.billing, rt.settings),
        invoice_delivery(rt.billing, rt.settings),
        dunning_notices(rt.billing, rt.settings),
    )


SEAL_INTERVAL_S = 5.0


async def keep_sealing(rt: Runtime, stop: asyncio.Event) -> None:
    """Extend the audit seal every few seconds, so new events are sealed promptly
    (an event is only tamper-evident once sealed)."""
    seal = rt.read_side.audit_seal()
    while not stop.is_set():
        await asyncio.to_thread(seal_up_to_head, rt.billing, seal)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SEAL_INTERVAL_S)


SCHEDULE_INTERVAL_S = 10.0


async def keep_scheduling(
    rt: Runtime,
    stop: asyncio.Event,
    interval: float = SCHEDULE_INTERVAL_S,
    once: bool = False,
    holder: str | None = None,
) -> Pass:
    """Queue the runs schedules make due and execute queued runs
    (application/runs/scheduler.py), every `interval` seconds until `stop` (`once`: one
    pass). The blocking work runs in a thread; `stop` reaches the run in hand at
    its next checkpoint, which releases its lease for another manager. Returns the
    last pass."""
    scheduling = Scheduling(Manager(rt.billing, holder, rt.settings.batch_size))

    async def stop_when_asked() -> None:
        await stop.wait()
        scheduling.stop()

    watcher = asyncio.create_task(stop_when_asked())
    last = Pass()
    try:
        while not stop.is_set():
            try:
                last = await asyncio.to_thread(scheduling.run_once)
            except Exception:
                if once:
                    raise
                log.exception("scheduler: the pass failed; next one in %.0f s", interval)
            if once:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        watcher.cancel()
    return last


def run_queue_names(rt: Runtime, names: StreamNames | None = None) -> RunQueueNames:
    return RunQueueNames.of(names or stream_names(rt.settings))


def batch_dispatch(rt: Runtime, url: str, names: StreamNames | None = None) -> BatchDispatch:
    """What a run's coordinator hands its batches out with: the deployment's run
    queue on `url`, and the patience of BILLRUN_BATCH_ACK_WAIT before it bills a
    stalled batch itself."""
    queue = run_queue_names(rt, names)
    ack_wait = rt.settings.batch_ack_wait

    def publish(orders: list[BatchOrder]) -> None:
        asyncio.run(publish_orders(url, queue, orders, ack_wait))

    return BatchDispatch(rt.billing, publish, patience=ack_wait)


async def keep_billing_batches(
    rt: Runtime,
    url: str,
    stop: asyncio.Event,
    names: StreamNames | None = None,
    started: asyncio.Event | None = None,
) -> None:
    """Bill the batches of shared runs (application/runs/batch_worker.py) that the
    deployment's run queue hands this worker, until `stop`."""
    ack_wait = rt.settings.batch_ack_wait
    worker = BatchWorker(rt.billing, patience=ack_wait)
    queue = run_queue_names(rt, names)
    await work_batches(url, queue, worker.handle, stop, ack_wait, started)


def topology(names: StreamNames) -> Topology:
    from consumers.topology import Topology

    return Topology(
        stream=names.stream,
        subject_prefix=names.subject_prefix,
        dead_letter_stream=names.dead_letter_stream,
        dead_letter_prefix=names.dead_letter_prefix,
        durable_prefix=names.durable_prefix,
    )


def relay_parts(rt: Runtime) -> tuple[NotificationLog, RelayPositions]:
    # Billing refuses to start on anything but PostgreSQL, so the cast holds.
    source = NotificationLog(cast(PostgresApplicationRecorder, rt.billing.recorder))
    positions = RelayPositions(source.datastore)
    positions.create_table()
    return source, positions


class WorkerFault(Exception):
    """The worker cannot go on: one line for the operator and a non-zero exit, so a
    supervisor restarts it."""


NATS_WATCH_INTERVAL_S = 1.0


async def watch_embedded_nats(url: str, stop: asyncio.Event) -> None:
    """Raise WorkerFault when the embedded nats-server behind `url` dies.

    nats-py would reconnect to a dead server for ever ("no servers available"):
    a server of our own that is gone will not come back. Stopping lets a
    supervisor (or the operator) start the worker again, which starts a new
    server; the relay resumes from its saved position and unacknowledged messages
    are redelivered. A server named by BILLRUN_NATS_URL is someone else's to
    restart: there, reconnecting is right.
    """
    # Imported here: only the worker needs it, and every command imports this module.
    from infrastructure.embedded import embedded_nats_exit

    while not stop.is_set():
        ended = embedded_nats_exit(url)
        if ended is not None:
            raise WorkerFault(
                f"{ended}: the worker stops. Start it again (a new server starts with "
                "it); nothing is lost: the relay resumes from its saved position and "
                "unacknowledged messages are redelivered."
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), NATS_WATCH_INTERVAL_S)


async def run_worker(
    rt: Runtime,
    nats_url: str,
    stop: asyncio.Event,
    names: StreamNames | None = None,
    started: asyncio.Event | None = None,
    batches_only: bool = False,
) -> None:
    """Relay and consume until `stop` is set (`batches_only`: only bill the batches
    of shared runs, `keep_billing_batches`; any number of such workers may run).
    Raises what stopped it otherwise (RelayError, e.g. another worker relaying or
    another deployment owning the streams of this prefix; WorkerFault). `names`
    defaults to the settings' (BILLRUN_NATS_PREFIX, BILLRUN_SOURCE)."""
    names = names or stream_names(rt.settings)
    if batches_only:
        await _bill_batches_only(rt, nats_url, stop, names, started)
        return
    nc = await connect(nats_url, name="billrun-worker-setup", reconnect=False)
    try:
        await ensure_streams(nc.jetstream(), names)
    except NamespaceConflict as error:
        raise RelayError(str(error)) from None
    finally:
        await nc.close()
    source, positions = relay_parts(rt)
    relay = Relay(source, positions, nats_url, names, connection_name="billrun-worker-relay")
    # FastStream is imported by the worker only: `billrun relay`, `schedule` and
    # `scheduler` share this module and start without it (docs/benchmarks.md).
    from consumers.app import build_broker

    broker = build_broker(nats_url, invoice_processing(rt), topology(names))
    failure: BaseException | None = None
    try:
        async with broker:
            await broker.start()
            relaying = asyncio.create_task(relay.run(stop, follow=True))
            tasks = {
                relaying,
                asyncio.create_task(keep_sealing(rt, stop)),
                asyncio.create_task(keep_scheduling(rt, stop)),
                asyncio.create_task(keep_billing_batches(rt, nats_url, stop, names)),
                asyncio.create_task(watch_embedded_nats(nats_url, stop)),
            }
            stopping = asyncio.create_task(stop.wait())
            log.info("worker: relaying and consuming from %s", nats_url)
            if started is not None:
                started.set()
            # A relay that fails must stop the worker too: consumers without a relay
            # would look alive while nothing new reaches them.
            await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            await stopping
            # Every part finishes before the broker stops; the first failure is
            # raised after that, so no part is left running behind it.
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
            if failure is None:
                log.info("worker: stopping; relay at position %d", relaying.result().position)
    except NatsError as error:
        # The broker could not drain its subscriptions: NATS is down. What the
        # consumers held is unacknowledged and will be redelivered.
        if failure is None:
            failure = WorkerFault(
                f"stopped while NATS at {nats_url} was unreachable "
                f"({error or type(error).__name__}): messages in hand were not "
                "acknowledged and will be redelivered; nothing is lost."
            )
    if failure is not None:
        raise failure


async def _bill_batches_only(
    rt: Runtime,
    nats_url: str,
    stop: asyncio.Event,
    names: StreamNames,
    started: asyncio.Event | None,
) -> None:
    batches = asyncio.create_task(keep_billing_batches(rt, nats_url, stop, names, started))
    watching = asyncio.create_task(watch_embedded_nats(nats_url, stop))
    stopping = asyncio.create_task(stop.wait())
    log.info("worker: billing run batches from %s", nats_url)
    await asyncio.wait({batches, watching, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    outcomes = await asyncio.gather(batches, watching, return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure
