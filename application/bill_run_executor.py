"""Executing a bill run: batches of accounts, each saved in one transaction.

Every batch saves, atomically, the accounts it billed, the invoices it opened
and closed, the invoice numbers it reserved and the run's checkpoint
(`RunBatchCompleted`, which records the cursor). So:

- a crash loses at most the batch in flight, and the next execution resumes
  after the last checkpoint, producing exactly what an uninterrupted run would;
- two processes executing the same run compute the same batch from the same
  checkpoint; the event store's optimistic concurrency lets only one commit, and
  the other reloads and carries on from the new checkpoint (it helps, never
  duplicates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import get_topic

from application.billing import Billing
from domain.account import Account, AccountOpened
from domain.bill_run import BatchStatistics, BillRun
from domain.ids import account_uuid
from domain.invoice import Invoice
from domain.invoice_numbers import InvoiceNumberSequence
from infrastructure.event_store import Position

log = logging.getLogger(__name__)

ACCOUNT_OPENED = get_topic(AccountOpened)


@dataclass(frozen=True)
class Progress:
    run_id: str
    scanned: int
    in_scope: int
    batches: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Execution:
    run: BillRun
    already_completed: bool
    batches_committed: int
    conflicts: int


class BillRunExecutor:
    def __init__(
        self,
        billing: Billing,
        batch_size: int,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.billing = billing
        self.batch_size = batch_size
        self.on_progress = on_progress or (lambda progress: None)

    def execute(self, run_id: str) -> Execution:
        """Run (or resume, or help) the bill run until it is completed."""
        run = self.billing.get_run(run_id)
        if run.is_completed:
            return Execution(run, already_completed=True, batches_committed=0, conflicts=0)
        committed = conflicts = 0
        sequence = self.billing.get_invoice_sequence()
        while True:
            try:
                if run.is_scheduled:
                    self._start(run)
                    continue
                if run.is_completed:
                    return Execution(run, False, committed, conflicts)
                positions = self._next_positions(run)
                if not positions:
                    run.complete(self.billing.clock())
                    self.billing.save(run)
                    continue
                self._bill_batch(run, sequence, positions)
                committed += 1
                self._report(run)
            except RecordConflictError:
                # Another executor committed first. Our in-memory aggregates went
                # ahead of the store, so reload them and continue from its state.
                conflicts += 1
                log.info("run %s: another executor moved first; reloading", run_id)
                run = self.billing.get_run(run_id)
                sequence = self.billing.get_invoice_sequence()

    def _start(self, run: BillRun) -> None:
        log_position = self.billing.queries.head()
        in_scope = self.billing.queries.count(ACCOUNT_OPENED, log_position, self._selected_ids(run))
        run.start(log_position, in_scope, self.billing.clock())
        self.billing.save(run)
        log.info("run %s started: %d accounts in scope", run.run_id, in_scope)
        self._report(run)

    def _selected_ids(self, run: BillRun) -> list | None:  # type: ignore[type-arg]
        # Only an explicit list of accounts narrows the scan; bill groups are
        # read from each account's current state, as the group can change.
        if run.selection.accounts and not run.selection.groups:
            return [account_uuid(a) for a in run.selection.accounts]
        return None

    def _next_positions(self, run: BillRun) -> list[Position]:
        return self.billing.queries.positions(
            ACCOUNT_OPENED,
            after=run.cursor,
            upto=run.log_position,
            limit=self.batch_size,
            originator_ids=self._selected_ids(run),
        )

    def _bill_batch(
        self, run: BillRun, sequence: InvoiceNumberSequence, positions: list[Position]
    ) -> None:
        at = self.billing.clock()
        accounts = self.billing.load_many(Account, [p.originator_id for p in positions])
        billed: list[Account] = []
        invoices: list[Invoice] = []
        seen = skipped = lines = 0
        totals: dict[str, Decimal] = {}
        for position in positions:
            account = accounts[position.originator_id]
            if not run.selection.includes(account.account_id, account.bill_group):
                continue
            seen += 1
            billed_lines = account.bill(
                run.run_id, run.period, run.posting_date, at, run.settings.scope
            )
            if not billed_lines:
                skipped += 1
                continue
            invoice = Invoice.open(
                run.run_id, account.account_id, account.currency, run.posting_date, at
            )
            for line in billed_lines:
                invoice.add_line(line, at)
            billed.append(account)
            invoices.append(invoice)
            lines += len(billed_lines)
            totals[account.currency] = totals.get(account.currency, Decimal(0)) + invoice.subtotal
        numbers = sequence.reserve(len(invoices), run.run_id, at)
        for invoice, number in zip(invoices, numbers, strict=True):
            invoice.close(number, at)
        statistics = BatchStatistics(
            accounts_scanned=len(positions),
            accounts_seen=seen,
            accounts_billed=len(billed),
            accounts_skipped=skipped,
            invoices=len(invoices),
            lines=lines,
            totals=dict(sorted(totals.items())),
        )
        run.complete_batch(run.batches + 1, positions[-1].notification_id, statistics, numbers, at)
        self.billing.save(*billed, *invoices, sequence, run)

    def _report(self, run: BillRun) -> None:
        self.on_progress(
            Progress(
                run_id=run.run_id,
                scanned=run.statistics.accounts_scanned,
                in_scope=run.accounts_in_scope,
                batches=run.batches,
            )
        )
