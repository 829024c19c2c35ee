"""Handing a run's billing batches to workers, and following the run as they commit.

The executor of a run (`billrun run execute --workers`, or a manager) is the run's
coordinator: it starts the run, hands the billing phase's batches out as orders on
a work queue (`BatchDispatch.follow`; infrastructure/run_queue.py carries them), and
waits while `billrun worker`s bill them (application/runs/batch_worker.py), reporting
each checkpoint as it lands. The workers commit the batches in the run's order, so
the run's events are those one process would have written: same batches, same
cursor, same statistics, invoice numbers in the same order. When the billing phase
is done the coordinator goes on with the run's other phases itself, as one process
does (closing and collecting: see docs/scaling.md for why they stay ordered here).

Should the workers stall (none running, or the one holding the next batch dead),
the coordinator waits `patience` seconds without a checkpoint, then bills the next
batch itself and hands out what is left again: a run always finishes, with or
without workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from application.shared.app import Billing
from domain.runs.bill_run import BillRun
from domain.runs.settings import RunPhase, RunStatus
from infrastructure.event_store import Position
from infrastructure.run_queue import BatchOrder

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often a coordinator or a waiting worker reads the run's new events: one
indexed query for the events after the version it holds."""


class Follower(Protocol):
    """What following a run needs of its executor (`BillRunExecutor`)."""

    batch_size: int

    def batch_after(self, run: BillRun, after: int) -> list[Position]: ...

    def report(self, run: BillRun) -> None: ...


def refreshed(billing: Billing, run: BillRun) -> BillRun:
    """`run` moved on to its latest version with the events saved since it was read
    (one query for just those events: a run of a thousand batches is not read again
    whole at every poll)."""
    return BillRun.project(run, billing.events.get(run.id, gt=run.version)) or run  # type: ignore[arg-type]


def still_billing(run: BillRun) -> bool:
    return run.status is RunStatus.RUNNING and run.phase is RunPhase.BILLING


class BatchDispatch:
    """Hands a run's billing batches out (`publish`) and follows the run until the
    workers have billed them all, or stalled for `patience` seconds."""

    def __init__(
        self,
        billing: Billing,
        publish: Callable[[list[BatchOrder]], None],
        patience: float,
        poll: float = POLL_S,
    ) -> None:
        self.billing = billing
        self.publish = publish
        self.patience = patience
        self.poll = poll
        self._handed_out: dict[str, int] = {}
        """Per run, the end of the last batch handed out, so a coordinator that billed
        a stalled batch itself does not hand the others out twice."""

    def orders(self, executor: Follower, run: BillRun) -> list[BatchOrder]:
        """The run's batches from its cursor to the end of the billing phase, as
        `executor` would bill them (its batch size, the run's scope)."""
        orders: list[BatchOrder] = []
        after = run.cursor
        while positions := executor.batch_after(run, after):
            end = positions[-1].notification_id
            orders.append(BatchOrder(run.run_id, after, end, executor.batch_size, run.version))
            after = end
        return orders

    def follow(self, executor: Follower, run: BillRun) -> BillRun:
        """Hand out the batches not handed out yet and wait: returns `run` brought up
        to date once the billing phase has no batch left, the run stopped billing,
        or no checkpoint came for `patience` seconds (the caller bills the next
        batch itself and follows again)."""
        orders = self.orders(executor, run)
        if not orders:
            return run
        last_end = orders[-1].end
        new = [o for o in orders if o.end > self._handed_out.get(run.run_id, 0)]
        if new:
            self.publish(new)
            self._handed_out[run.run_id] = last_end
            log.info("run %s: %d batches handed to workers", run.run_id, len(new))
        batches, moved = run.batches, time.monotonic()
        while still_billing(run) and run.cursor < last_end:
            time.sleep(self.poll)
            run = refreshed(self.billing, run)
            if run.batches != batches:
                batches, moved = run.batches, time.monotonic()
                executor.report(run)
            elif time.monotonic() - moved > self.patience:
                log.warning(
                    "run %s: no worker checkpoint for %.0f s: billing the next batch here",
                    run.run_id, self.patience,
                )  # fmt: skip
                break
        return run
