"""A worker's part of a shared run: bill one batch beside the others, commit it in
the run's order.

A batch order (infrastructure/run_queue.py: `BatchOrder`) names the run and the
cursor the batch starts after. The worker bills the batch's families in memory
(`BillRunExecutor.prepare_billing`: loading and billing, the costly part, done
by all workers at once), then waits until the run's cursor stands exactly at the
batch's start and commits it there (`commit_billing`): numbers reserved, invoices
closed, the run's checkpoint recorded, all in one transaction. Committing in the
run's order is what keeps the run's events those of one process: the same batch
numbers, cursors and statistics, invoice numbers gapless and in the same order.

Nothing is billed twice: the batch's accounts, its invoices, the number sequence
and the run are saved together under optimistic concurrency, so whoever commits a
batch second (a worker given it again after the first seemed dead, a helper, a
`billrun run execute` beside the workers) conflicts, reads the run again, finds
the batch done and drops what it computed.

Nothing waits for ever: a worker whose predecessor has not committed after
`patience` seconds (a worker died holding it, and its redelivery sits behind
batches others hold) bills the run's next batch itself, as `billrun run execute`
would, and goes back to waiting for its own.
"""

from __future__ import annotations

import logging
import time

from eventsourcing.persistence import RecordConflictError

from application.runs.dispatch import POLL_S, refreshed, still_billing
from application.runs.executor import BillRunExecutor, PreparedBatch
from application.shared.app import Billing
from domain.runs.bill_run import BillRun
from domain.shared.errors import InvoiceError
from infrastructure.run_queue import BatchOrder

log = logging.getLogger(__name__)


class BatchMismatch(Exception):
    """The order does not describe a batch of its run (another deployment's message,
    or a bug): it is dropped with this reason in the log."""


class BatchWorker:
    """Executes batch orders against one event store; one order at a time."""

    def __init__(self, billing: Billing, patience: float, poll: float = POLL_S) -> None:
        self.billing = billing
        self.patience = patience
        self.poll = poll

    def handle(self, order: BatchOrder) -> str:
        """Bill the ordered batch and commit it in its turn; says what became of it."""
        run = self.billing.get_run(order.run_id)
        if self._done(run, order):
            return "already billed"
        # A fresh executor per order: its bill-group cache lives as long as the batch.
        executor = BillRunExecutor(self.billing, order.size)
        prepared = self._prepare(executor, run, order)
        helped = 0
        waited_since = time.monotonic()
        while True:
            run = refreshed(self.billing, run)
            if self._done(run, order):
                return "billed by another executor"
            if run.cursor == order.after:
                try:
                    executor.commit_billing(run, self.billing.get_invoice_sequence(), prepared)
                    return f"committed as batch {run.batches}" + (
                        f" (after billing {helped} stalled batches)" if helped else ""
                    )
                except (RecordConflictError, InvoiceError) as error:
                    # Someone committed beside us: this batch, or (a run over the
                    # same accounts) something it read. Read again and recompute.
                    log.info("run %s: batch after %d conflicted (%s); recomputing",
                             order.run_id, order.after, type(error).__name__)  # fmt: skip
                    run = self.billing.get_run(order.run_id)
                    if self._done(run, order):
                        return "billed by another executor"
                    prepared = self._prepare(executor, run, order)
            elif time.monotonic() - waited_since > self.patience:
                if self._help(executor, run):
                    helped += 1
                else:  # what the failed commit recorded on `run` was not saved
                    run = self.billing.get_run(order.run_id)
                waited_since = time.monotonic()
            else:
                time.sleep(self.poll)

    def _prepare(self, executor: BillRunExecutor, run: BillRun, order: BatchOrder) -> PreparedBatch:
        positions = executor.batch_after(run, order.after)
        if not positions or positions[-1].notification_id != order.end:
            raise BatchMismatch(
                f"run {order.run_id}: the batch after {order.after} does not end at "
                f"{order.end} (size {order.size})"
            )
        return executor.prepare_billing(run, positions)

    def _help(self, executor: BillRunExecutor, run: BillRun) -> bool:
        """The batch before ours has not come for `patience` seconds: bill the run's
        next batch here (True when it committed, False when someone else got there
        first and `run` must be read again)."""
        positions = executor.batch_after(run, run.cursor)
        if not positions:
            return False
        log.warning("run %s: batch after %d stalled for %.0f s: billing it here",
                    run.run_id, run.cursor, self.patience)  # fmt: skip
        try:
            prepared = executor.prepare_billing(run, positions)
            executor.commit_billing(run, self.billing.get_invoice_sequence(), prepared)
        except (RecordConflictError, InvoiceError):
            return False
        return True

    @staticmethod
    def _done(run: BillRun, order: BatchOrder) -> bool:
        """Nothing left to do for the order: its batch is committed, or the run is
        no longer billing (completed, failed, cancelled: its coordinator decides)."""
        return not still_billing(run) or run.cursor >= order.end
