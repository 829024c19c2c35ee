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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, DecimalException
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.invoicing.invoices import (
    DEFAULT_ISSUER,
    Closing,
    FamilyOutcome,
    Issuer,
    close_after_run,
    close_numbered,
    invoice_family,
)
from application.receivables.collection import Collector, payment_gateway
from application.receivables.dunning import apply_dunning
from application.runs.check import CheckReport, check_before_start, count_in_scope, missing_rates
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.ports import PaymentGateway
from domain.billing.account import Account
from domain.billing.events import AccountOpened
from domain.billing.exchange_rates import MissingRate, RateSnapshot
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.documents import DocumentType
from domain.invoicing.entities import sequence_id
from domain.invoicing.entity_details import DEFAULT_ENTITY
from domain.invoicing.events import BillGroupConfigured
from domain.invoicing.group_terms import CloseType
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import InvoiceNumberSequence
from domain.receivables.collection import CollectionAttempt, GatewayOutcome
from domain.receivables.dunning import SuspendedBilling
from domain.receivables.receivables import Receivables, receivables_uuid
from domain.runs.bill_run import BillRun
from domain.runs.run_content import RunContent
from domain.runs.settings import RunPhase, RunStatus
from domain.runs.statistics import (
    BatchCheckpoint,
    BatchStatistics,
    CollectionStatistics,
    PreviewSummary,
    StepTimings,
)
from domain.shared.errors import DomainError, InvoiceError, RunNotRunnable
from domain.shared.ids import account_uuid
from infrastructure.collector import collector_paused
from infrastructure.event_store import Position
from infrastructure.topics import topic_of

if TYPE_CHECKING:
    from application.runs.dispatch import BatchDispatch

log = logging.getLogger(__name__)

ACCOUNT_OPENED = topic_of(AccountOpened)
BILL_GROUP_CONFIGURED = topic_of(BillGroupConfigured)
STALE_READ_RETRIES = 3
"""Batches retried from fresh state after an `InvoiceError` with nothing committed
in between: a stale read clears at the first reload, a real error does not."""


PARKING_ERRORS: tuple[type[Exception], ...] = (
    DomainError,
    ApplicationError,
    ValueError,
    DecimalException,
    OverflowError,
)
"""What parks a family instead of failing the batch: the account's data cannot be
billed, and the operator fixes the data and runs `billrun run retry`.

- `DomainError`: a rule refused (a missing exchange rate, mixed currencies, an
  invoice in the wrong state);
- `ApplicationError`: the application refused (e.g. an invoicer that is not valid);
- `ValueError`: how the domain and pydantic refuse a value (`InputRefused`, an
  amount that cannot be rounded to its currency, a `ValidationError`);
- `DecimalException` and `OverflowError`: an amount or a date past what Decimal's
  context or `datetime.date` can hold.

Anything else (AttributeError, TypeError, KeyError, NameError, ...) is a bug in
billrun, the same for every account: parking would hide it as "bad data" on every
family of the run. It fails the batch loudly instead; nothing of the batch is
saved, and the run resumes from its last checkpoint once the bug is fixed.
"""


class RunCheckFailed(ApplicationError):
    """`billrun run check` found errors: the run does not start."""

    def __init__(self, report: CheckReport) -> None:
        listed = "; ".join(
            f"{f.message} ({f.count}: {', '.join(f.accounts)})" if f.accounts else f.message
            for f in report.errors
        )
        super().__init__(
            f"run {report.run_id} cannot start, its checks found errors: {listed}. "
            f"See `billrun run check {report.run_id}`."
        )
        self.report = report


class RunNeedsRates(ApplicationError):
    def __init__(self, run_id: str, on: date, pairs: list[str]) -> None:
        listed = ", ".join(pairs)
        super().__init__(
            f"run {run_id} cannot start: no exchange rate in effect on {on} for {listed}. "
            f"Record them with `billrun rates set BASE QUOTE RATE --date {on}`."
        )
        self.pairs = pairs


@dataclass(frozen=True)
class Progress:
    run_id: str
    scanned: int
    in_scope: int
    seen: int
    """Accounts reached, which ends at `in_scope` (scanned counts unselected ones too)."""
    batches: int


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class Execution:
    run: BillRun
    already_completed: bool
    batches_committed: int
    conflicts: int


@dataclass
class _Batch:
    invoicers: list[Account]
    members: dict[UUID, Account]
    open_invoices: dict[UUID, Invoice]
    receivables: dict[str, Receivables]
    """The invoicers' receivables that exist, by account id; `receivables_of` opens
    the others when an invoice is first posted to them."""

    def accounts(self) -> list[Account]:
        return [*self.invoicers, *self.members.values()]

    def receivables_of(self, invoicer: Account, at: datetime) -> Receivables:
        found = self.receivables.get(invoicer.account_id)
        if found is None:
            found = Receivables.open(invoicer.account_id, invoicer.currency, at)
            self.receivables[invoicer.account_id] = found
        return found

    def open_invoice_of(self, invoicer: Account) -> Invoice | None:
        if invoicer.open_invoice is None:
            return None
        return self.open_invoices[invoicer.open_invoice]


@dataclass
class PreparedBatch:
    """A billing batch computed in memory and not yet saved (`prepare_billing`)."""

    positions: list[Position]
    batch: _Batch
    outcomes: list[FamilyOutcome]
    parked: list[tuple[str, str]]
    at: datetime
    started: int
    """`time.monotonic_ns()` when the batch began loading, and when billing ended."""
    billed: int
    dunning_ns: int

    @property
    def end(self) -> int:
        """The cursor the batch's checkpoint records."""
        return self.positions[-1].notification_id


def _content(outcomes: list[FamilyOutcome], into: RunContent | None = None) -> RunContent:
    """What the families of a batch were billed: their lines and invoices."""
    content = into or RunContent()
    for outcome in outcomes:
        if outcome.opened is not None:
            content.add_invoice(outcome.opened.id)
        for invoice_id, line in outcome.added:
            content.add(invoice_id, line)
    return content


def _collection_statistics(
    attempt: CollectionAttempt | None, account: Account
) -> CollectionStatistics:
    """One account's part of a collection batch's statistics: its attempt for the run."""
    if attempt is None:
        return CollectionStatistics()
    outcome = attempt.outcome
    approved = outcome is GatewayOutcome.APPROVED
    return CollectionStatistics(
        attempts=1,
        approved=int(approved),
        declined=int(outcome is GatewayOutcome.DECLINED),
        errors=int(outcome is GatewayOutcome.ERROR),
        pending=int(attempt.pending),
        collected={account.currency: attempt.amount} if approved else {},
    )


def _touched_by(invoice: Invoice, run_id: str) -> bool:
    """Whether run `run_id` opened the invoice or billed a line onto it."""
    return invoice.run_id == run_id or any(line.run_id == run_id for line in invoice.lines)


def invoice_totals(invoices: list[Invoice], rates: RateSnapshot) -> dict[str, Any]:
    """The closed invoices' net, tax and gross per currency, and the same in the base
    currency when one is set (each invoice's net and tax converted once with the
    run's rates, gross their sum, so net + tax = gross there too)."""
    net: dict[str, Decimal] = {}
    tax: dict[str, Decimal] = {}
    base: dict[str, Decimal] = {}
    base_currency = rates.base_currency
    for invoice in invoices:
        currency = invoice.currency
        net[currency] = net.get(currency, Decimal(0)) + invoice.subtotal
        tax[currency] = tax.get(currency, Decimal(0)) + invoice.tax
        if base_currency is not None:
            converted_net = rates.convert(invoice.subtotal, currency, base_currency)
            converted_tax = rates.convert(invoice.tax, currency, base_currency)
            base["net"] = base.get("net", Decimal(0)) + converted_net
            base["tax"] = base.get("tax", Decimal(0)) + converted_tax
    gross = {currency: net[currency] + tax[currency] for currency in net}
    if base:
        base["gross"] = base["net"] + base["tax"]
    return {
        "totals": dict(sorted(net.items())),
        "tax_totals": dict(sorted(tax.items())),
        "gross_totals": dict(sorted(gross.items())),
        "base_totals": {base_currency: base} if base and base_currency else {},
    }


def _invoices_of(outcome: FamilyOutcome) -> list[Invoice]:
    found = [closing.invoice for closing in outcome.closing]
    if outcome.left_open is not None:
        found.append(outcome.left_open)
    return found


class BillRunExecutor:
    def __init__(
        self,
        billing: Billing,
        batch_size: int,
        on_progress: ProgressCallback | None = None,
        on_checkpoint: Callable[[BillRun], None] | None = None,
        gateway: PaymentGateway | None = None,
        dispatch: BatchDispatch | None = None,
    ) -> None:
        self.billing = billing
        self.dispatch = dispatch
        """Where the billing phase's batches go to be billed by workers (None: billed
        here, one after the other); application/runs/dispatch.py."""
        self.gateway = gateway
        """Where the collection step charges auto-pay accounts (None: the configured
        one, `application.receivables.collection.payment_gateway`, made when first needed)."""
        self.batch_size = batch_size
        self.on_progress = on_progress or (lambda progress: None)
        self.on_checkpoint = on_checkpoint
        """Called with the executor's own run after each checkpoint (start, batch):
        a manager renews its lease there by recording on that very object and
        saving it, so the executor stays in step with the store; raising anything
        but RecordConflictError stops the execution (application/runs/scheduler.py)."""
        self._groups: dict[str, BillGroup] = {}
        self._dunning_ns = 0

    def execute(self, run_id: str) -> Execution:
        """Run (or resume, or help) the bill run until it is completed."""
        return self.execute_run(self.billing.get_run(run_id))

    def execute_run(self, run: BillRun) -> Execution:
        """`execute` for a run the caller has just read (so it is read once before
        the first batch): the executor goes on with this very object, recording
        on it and saving it; a conflict reloads it from the store."""
        run_id = run.run_id
        if run.is_completed:
            return Execution(run, already_completed=True, batches_committed=0, conflicts=0)
        if run.status is RunStatus.CANCELLED:
            raise RunNotRunnable(f"run {run_id} is cancelled: it bills nothing")
        if run.status is RunStatus.FAILED:
            log.info("run %s failed (%s): resuming it", run_id, run.failure)
            run.resume(self.billing.clock())
            self.billing.save(run)
        committed = conflicts = stale_reads = 0
        sequence = self.billing.get_invoice_sequence()
        while True:
            collecting = run.phase is RunPhase.COLLECTING
            try:
                if run.is_scheduled:
                    self._start(run)
                    continue
                if run.is_completed:
                    return Execution(run, False, committed, conflicts)
                positions = self._next_positions(run, self._cursor(run))
                if positions and self.dispatch is not None and run.phase is RunPhase.BILLING:
                    # Workers bill the batches; what they leave (they stalled) is
                    # billed here, one batch at a time, and the rest handed out again.
                    run = self.dispatch.follow(self, run)
                    sequence = self.billing.get_invoice_sequence()
                    positions = self._next_positions(run, self._cursor(run))
                if not positions:
                    self._finish_phase(run)
                    continue
                self._batch(run, sequence, positions)
                committed += 1
                stale_reads = 0
                self._report(run)
            except InvoiceError as error:
                # A batch reads its accounts and their open invoices in separate
                # queries: another executor (of this run, or of another run over
                # the same accounts) can close an invoice in between, and closing
                # or billing onto it again is refused. That is a concurrency
                # conflict seen late: reload and carry on. A real error repeats on
                # fresh state and is raised. Collection is never retried here (it
                # calls the gateway between commits: application.receivables.collection).
                stale_reads += 1
                if collecting or stale_reads > STALE_READ_RETRIES:
                    raise
                conflicts += 1
                log.info("run %s: read an invoice another executor changed (%s); reloading",
                         run_id, error)  # fmt: skip
                run = self.billing.get_run(run_id)
                sequence = self.billing.get_invoice_sequence()
            except RecordConflictError:
                # Another executor committed first. Our in-memory aggregates went
                # ahead of the store, so reload them and continue from its state.
                conflicts += 1
                log.info("run %s: another executor moved first; reloading", run_id)
                run = self.billing.get_run(run_id)
                sequence = self.billing.get_invoice_sequence()

    def _batch(
        self, run: BillRun, sequence: InvoiceNumberSequence, positions: list[Position]
    ) -> None:
        """One batch of the run's current phase, the phases in seed order: billing
        (AR terms, packages, usage, contracts, onto invoices, closing those that
        close as billed: `_invoice_family`), then closing the invoices left open
        for after the run, then collecting payments. Rendering and delivery follow
        each closed invoice through the outbox (consumers/render.py, deliver.py)."""
        if run.phase is RunPhase.BILLING:
            # A batch's objects all live until it is saved: collections
            # meanwhile free nothing (a sixth of the run's CPU, measured).
            with collector_paused():
                self._bill_batch(run, sequence, positions)
        elif run.phase is RunPhase.CLOSING:
            with collector_paused():
                self._close_batch(run, sequence, positions)
        else:
            self._collect_batch(run, positions)

    def preview(
        self,
        run_id: str,
        on_batch: Callable[[list[FamilyOutcome]], None] | None = None,
    ) -> PreviewSummary:
        """What executing the scheduled run now would bill, by the very code that
        bills (`invoice_family` over the same batches), with nothing saved: the
        accounts, invoices and run are loaded, billed in memory and dropped.
        `on_batch` sees each batch's outcomes (the per-invoice and per-account
        detail), so no more than a batch is held at once."""
        run = self.billing.get_run(run_id)
        if not run.is_scheduled:
            raise RunNotRunnable(
                f"run {run_id} is {run.status.value}: only a scheduled run can be previewed"
            )
        log_position = self.billing.queries.head()
        at = self.billing.clock()
        run.start(log_position, 0, at, self._rates_for(run, log_position))
        content = RunContent()
        after = 0
        while positions := self._next_positions(run, after):
            outcomes, _ = self._bill_families(run, self._load_batch(run, positions), at)
            _content(outcomes, content)
            if on_batch is not None:
                on_batch(outcomes)
            after = positions[-1].notification_id
        return PreviewSummary(
            digest=content.digest,
            invoices=len(content.invoices),
            lines=content.lines,
            totals=content.totals,
            log_position=log_position,
        )

    def _start(self, run: BillRun) -> None:
        # One log head for the check, the rates and the scope: the rates the check
        # computed (a missing one is among its errors) are the ones the run fixes.
        check = check_before_start(self.billing, run)
        if check.report.errors:
            raise RunCheckFailed(check.report)
        in_scope = count_in_scope(self.billing, run, check.head)
        run.start(check.head, in_scope, self.billing.clock(), check.rates)
        self.billing.save(run)
        log.info("run %s started: %d accounts in scope", run.run_id, in_scope)
        self._report(run)

    def _rates_for(self, run: BillRun, log_position: int) -> RateSnapshot:
        """The rates in effect on the run's posting date, refusing the run (before it
        starts, so nothing is written) when a conversion it may need has no rate."""
        snapshot, missing = missing_rates(self.billing, run, log_position)
        if missing:
            raise RunNeedsRates(run.run_id, run.posting_date, missing)
        return snapshot

    def _selected_ids(self, run: BillRun) -> list | None:  # type: ignore[type-arg]
        # Only an explicit list of accounts narrows the scan; bill groups are
        # read from each account's current state, as the group can change.
        if run.selection.accounts and not run.selection.groups:
            return [account_uuid(a) for a in run.selection.accounts]
        return None

    def _next_positions(self, run: BillRun, after: int) -> list[Position]:
        return self.billing.queries.positions(
            ACCOUNT_OPENED,
            after=after,
            upto=run.log_position,
            limit=self.batch_size,
            originator_ids=self._selected_ids(run),
        )

    def batch_after(self, run: BillRun, after: int) -> list[Position]:
        """The accounts' positions of the run's batch after cursor `after` (empty:
        none left), `batch_size` of them at most."""
        return self._next_positions(run, after)

    def report(self, run: BillRun) -> None:
        """Tell the progress and checkpoint hooks where `run` stands (a coordinator
        following workers calls it as their checkpoints arrive)."""
        self._report(run)

    @staticmethod
    def _cursor(run: BillRun) -> int:
        if run.phase is RunPhase.BILLING:
            return run.cursor
        if run.phase is RunPhase.CLOSING:
            return run.closing_cursor
        return run.collection_cursor

    def _finish_phase(self, run: BillRun) -> None:
        """The current phase is done: go on to the next one the run has, in seed order.
        After billing, close the open invoices of `after_each_bill_run` groups in a
        pass of their own when the run has any; after that, collect payments when
        the run does (seed order: last); then complete."""
        at = self.billing.clock()
        if (
            run.phase is RunPhase.BILLING
            and run.settings.run_invoices
            and self._closes_after_run(run)
        ):
            run.start_closing(at)
        elif run.phase is not RunPhase.COLLECTING and run.settings.collect_payments:
            run.start_collecting(at)
        else:
            run.complete(at)
        self.billing.save(run)

    def _closes_after_run(self, run: BillRun) -> bool:
        ids = self.billing.queries.originators(BILL_GROUP_CONFIGURED)
        groups = self.billing.load_many(BillGroup, ids).values()
        return any(
            g.close_type is CloseType.AFTER_EACH_BILL_RUN
            and (
                run.selection.is_all or run.selection.accounts or g.group_id in run.selection.groups
            )
            for g in groups
        )

    def _bill_batch(
        self, run: BillRun, sequence: InvoiceNumberSequence, positions: list[Position]
    ) -> None:
        self.commit_billing(run, sequence, self.prepare_billing(run, positions))

    def prepare_billing(self, run: BillRun, positions: list[Position]) -> PreparedBatch:
        """Bill a batch's families in memory (the costly part), saving nothing: a
        worker of a shared run prepares its batch beside the others and commits it
        in the run's order (`commit_billing`, application/runs/batch_worker.py).
        Reads the run's period, settings and rates only, which batches do not change."""
        at = self.billing.clock()
        started = time.monotonic_ns()
        batch = self._load_batch(run, positions)
        self._dunning_ns = 0
        outcomes, parked = self._bill_families(run, batch, at)
        return PreparedBatch(
            positions, batch, outcomes, parked, at, started, time.monotonic_ns(), self._dunning_ns
        )

    def commit_billing(
        self, run: BillRun, sequence: InvoiceNumberSequence, prepared: PreparedBatch
    ) -> None:
        """Number and close what `prepared` billed, record the run's checkpoint on
        `run` (which must stand at the batch's start: its cursor just before it) and
        save it all in one transaction."""
        at, batch, positions = prepared.at, prepared.batch, prepared.positions
        for account_id, reason in prepared.parked:
            run.park(account_id, reason, at)
        parked_ids = {account_id for account_id, _ in prepared.parked}
        seen = sum(1 + len(invoicer.members) for invoicer in batch.invoicers)
        parked_accounts = sum(
            1 + len(invoicer.members)
            for invoicer in batch.invoicers
            if invoicer.account_id in parked_ids
        )

        def checkpoint(statistics: BatchStatistics, numbers: list[int]) -> None:
            cursor = positions[-1].notification_id
            timings = StepTimings(
                billing_ms=(prepared.billed - prepared.started - prepared.dunning_ns) // 1_000_000,
                invoicing_ms=(time.monotonic_ns() - prepared.billed) // 1_000_000,
                dunning_ms=prepared.dunning_ns // 1_000_000,
            )
            run.complete_batch(
                BatchCheckpoint(run.batches + 1, cursor, statistics, numbers, timings), at
            )

        statistics = self._save_batch(
            run,
            sequence,
            batch,
            prepared.outcomes,
            at,
            (len(positions), seen, parked_accounts),
            checkpoint,
        )
        log.debug("run %s: batch %d: %s", run.run_id, run.batches, statistics)

    def _bill_families(
        self, run: BillRun, batch: _Batch, at: datetime
    ) -> tuple[list[FamilyOutcome], list[tuple[str, str]]]:
        """Bill each family of the batch onto its invoices, in memory (execution saves
        the result, a preview drops it). A family whose data cannot be billed (one of
        `PARKING_ERRORS`) is parked with the reason, and what it had half done is
        dropped: the others are billed all the same. Any other error is a bug and
        fails the batch."""
        outcomes: list[FamilyOutcome] = []
        parked: list[tuple[str, str]] = []
        for invoicer in batch.invoicers:
            try:
                outcomes.append(self._invoice_family(run, batch, invoicer, at))
            except PARKING_ERRORS as error:  # the data refused: park only this family
                members = [batch.members[account_uuid(m)] for m in invoicer.members]
                receivables = batch.receivables.get(invoicer.account_id)
                for aggregate in (invoicer, *members, batch.open_invoice_of(invoicer), receivables):
                    if aggregate is not None:
                        aggregate.collect_events()
                reason = f"{type(error).__name__}: {error}"
                if isinstance(error, MissingRate):
                    # The run's rates are fixed, but a retry reads the pairs it lacks.
                    reason += (
                        f"; then `billrun run retry {run.run_id} --account "
                        f"{invoicer.account_id}` (the retry adds the missing rate to the run)"
                    )
                log.warning(
                    "run %s: account %s parked: %s", run.run_id, invoicer.account_id, reason
                )
                parked.append((invoicer.account_id, reason))
        return outcomes, parked

    def retry(self, run_id: str, account_id: str) -> BatchStatistics:
        """Bill an account the run parked (after the fix), with the run's period,
        settings and rates, in one transaction; a failure again writes nothing.
        Rates the run lacks are read from the book on its posting date and added to
        the run (`RunRatesAdded`); those it fixed at its start are kept."""
        run = self.billing.get_run(run_id)
        if account_id not in run.parked:
            raise RunNotRunnable(f"account {account_id} is not parked in run {run_id}")
        at = self.billing.clock()
        # A family parked for a missing rate is retried after the rate is recorded:
        # the pairs the run lacks are read from the book (RunRatesAdded, saved with
        # the retry or not at all); the pairs it fixed at its start stay.
        book = self.billing.get_rate_book().snapshot(run.posting_date)
        run.add_rates_for_retry(account_id, book, at)
        invoicer = self.billing.get_account(account_id)
        batch = self._batch_of([invoicer])
        outcome = self._invoice_family(run, batch, invoicer, at)  # a failure is raised
        sequence = self.billing.get_invoice_sequence()

        def record(statistics: BatchStatistics, numbers: list[int]) -> None:
            run.record_retry(account_id, statistics, numbers, at)

        # The family was seen and counted parked by its batch: it moves from parked
        # to billed or skipped, and nothing is seen anew.
        return self._save_batch(
            run, sequence, batch, [outcome], at, (0, 0, -(1 + len(batch.members))), record
        )

    def _close_batch(
        self, run: BillRun, sequence: InvoiceNumberSequence, positions: list[Position]
    ) -> None:
        at = self.billing.clock()
        batch = self._load_batch(run, positions, with_members=False)
        outcomes = [
            close_after_run(
                run,
                invoicer,
                self._group(invoicer.bill_group),
                batch.open_invoice_of(invoicer),
                at,
            )
            for invoicer in batch.invoicers
        ]

        def checkpoint(statistics: BatchStatistics, numbers: list[int]) -> None:
            cursor = positions[-1].notification_id
            run.complete_closing_batch(
                BatchCheckpoint(run.closing_batches + 1, cursor, statistics, numbers), at
            )

        self._save_batch(run, sequence, batch, outcomes, at, (len(positions), 0, 0), checkpoint)

    def _save_batch(
        self,
        run: BillRun,
        sequence: InvoiceNumberSequence,
        batch: _Batch,
        outcomes: list[FamilyOutcome],
        at: datetime,
        counts: tuple[int, int, int],
        record: Callable[[BatchStatistics, list[int]], None],
    ) -> BatchStatistics:
        """Number and close the batch's closings, record the run's event for it
        (`record`: its checkpoint), and save everything in one transaction.
        `counts`: accounts scanned, seen and parked; billed are the accounts with
        something recorded and skipped the rest, so seen = billed + skipped + parked."""
        closings = [closing for o in outcomes for closing in o.closing]
        for closing in closings:
            closing.receivables = batch.receivables_of(closing.invoicer, at)
        numbers, issuers, sequences = self._reserve(run, sequence, closings, at)
        close_numbered(closings, numbers, run.run_id, at, run.posting_date, issuers)
        released = self._release_held(run, outcomes, at)
        totals = invoice_totals([closing.invoice for closing in closings], run.rates)
        changed_accounts = [a for a in batch.accounts() if a.has_pending_events]
        content = _content(outcomes)
        invoices = {i.id: i for o in outcomes for i in _invoices_of(o)}
        invoices.update({i.id: i for i in released})
        scanned, seen, parked = counts
        billed = len(changed_accounts) if run.phase is RunPhase.BILLING else 0
        left_open = sum(1 for o in outcomes if o.left_open is not None)
        if run.phase is RunPhase.CLOSING:
            # The closing pass closes what this run's billing pass counted as left
            # open (opened by it, or given its lines): the run's sum must drop.
            left_open -= sum(1 for c in closings if _touched_by(c.invoice, run.run_id))
        statistics = BatchStatistics(
            accounts_scanned=scanned,
            accounts_seen=seen,
            accounts_billed=billed,
            accounts_skipped=seen - billed - parked,
            accounts_parked=parked,
            invoices=len(closings),
            lines=sum(o.lines for o in outcomes),
            **totals,
            invoices_left_open=left_open,
            invoices_released=len(released),
            content_digest=content.digest,
            billed=content.totals,
            line_counts=dict(sorted(content.counts.items())),
            dunning_applied=sum(len(o.dunning) for o in outcomes),
            accounts_suspended=sum(
                1 for o in outcomes for d in o.dunning if "suspend" in d.actions
            ),
            stranded=sum(len(o.stranded) for o in outcomes),
        )
        # The run records the default sequence's numbers (its first and last per
        # batch); other entities' numbers are on their invoices.
        record(
            statistics, [n for n, (who, _, _) in zip(numbers, issuers, strict=True) if who is None]
        )
        receivables = [r for r in batch.receivables.values() if r.has_pending_events]
        self.billing.save(
            *changed_accounts, *invoices.values(), *receivables, sequence, *sequences, run
        )
        return statistics

    def _reserve(
        self, run: BillRun, sequence: InvoiceNumberSequence, closings: list[Closing], at: datetime
    ) -> tuple[list[int], list[Issuer], list[InvoiceNumberSequence]]:
        """Reserve each closing's number in its issuing entity's own sequence (its
        bill group's entity; none: the default one, `sequence`). The sequences are
        saved with the invoices in one transaction, so a retried batch consumes no
        numbers and two closers racing conflict on the sequence's version (gapless).
        Returns the numbers, each invoice's `Issuer` (entity, printed number, its
        payment terms; None for the default entity's), and the other entities'
        sequences to save."""
        by_entity: dict[str, list[int]] = {}
        for index, closing in enumerate(closings):
            entity_id = closing.group.issuing_entity or DEFAULT_ENTITY
            by_entity.setdefault(entity_id, []).append(index)
        numbers = [0] * len(closings)
        issuers: list[Issuer] = [DEFAULT_ISSUER] * len(closings)
        sequences: list[InvoiceNumberSequence] = []
        for entity_id, indexes in sorted(by_entity.items()):
            if entity_id == DEFAULT_ENTITY:
                for index, number in zip(
                    indexes, sequence.reserve(len(indexes), run.run_id, at), strict=True
                ):
                    numbers[index] = number
                continue
            entity = self.billing.get_entity(entity_id)
            details = entity.details
            assert details is not None  # an entity is recorded with its details
            own = self.billing.get_sequence(sequence_id(entity_id, DocumentType.INVOICE))
            reserved = own.reserve(len(indexes), run.run_id, at)
            sequences.append(own)
            for index, number in zip(indexes, reserved, strict=True):
                issued = run.posting_date or closings[index].invoice.posting_date
                assert issued is not None
                numbers[index] = number
                printed = entity.number(number, DocumentType.INVOICE, issued.year)
                issuers[index] = (entity_id, printed, details.payment_terms_days)
        return numbers, issuers, sequences

    def _release_held(
        self, run: BillRun, outcomes: list[FamilyOutcome], at: datetime
    ) -> list[Invoice]:
        ids = [invoice_id for o in outcomes for invoice_id in o.released]
        held = self.billing.load_many(Invoice, ids) if ids else {}
        released = [held[i] for i in ids if i in held]
        for invoice in released:
            invoice.release(run.run_id, at)
        return released

    def _load_batch(
        self, run: BillRun, positions: list[Position], with_members: bool = True
    ) -> _Batch:
        """The batch's invoicers (accounts billed onto their own invoices, selected by
        the run), their members and their open invoices, each loaded in one query."""
        accounts = self.billing.load_many(Account, [p.originator_id for p in positions])
        invoicers = [
            accounts[p.originator_id]
            for p in positions
            if accounts[p.originator_id].invoicer is None
            and run.selection.includes(
                accounts[p.originator_id].account_id, accounts[p.originator_id].bill_group
            )
        ]
        return self._batch_of(invoicers, with_members)

    def _batch_of(self, invoicers: list[Account], with_members: bool = True) -> _Batch:
        """Invoicers with their members and open invoices, each kind in one query."""
        members = self._members(invoicers) if with_members else {}
        open_ids = [a.open_invoice for a in invoicers if a.open_invoice is not None]
        open_invoices = self.billing.load_many(Invoice, open_ids) if open_ids else {}
        loaded = self.billing.load_many(
            Receivables, [receivables_uuid(a.account_id) for a in invoicers]
        )
        receivables = {r.account_id: r for r in loaded.values()}
        return _Batch(invoicers, members, open_invoices, receivables)

    def _invoice_family(
        self, run: BillRun, batch: _Batch, invoicer: Account, at: datetime
    ) -> FamilyOutcome:
        members = [batch.members[account_uuid(m)] for m in invoicer.members]
        group = self._group(invoicer.bill_group)
        receivables = batch.receivables.get(invoicer.account_id)
        started = time.monotonic_ns()
        dunning = apply_dunning(run, invoicer, receivables, group, at)
        self._dunning_ns += time.monotonic_ns() - started
        hold = (
            receivables is not None
            and receivables.suspended
            and group.suspended_billing is SuspendedBilling.HOLD_INVOICES
        )
        outcome = invoice_family(
            run, invoicer, members, group, batch.open_invoice_of(invoicer), at, hold
        )
        outcome.dunning = dunning
        return outcome

    def _collect_batch(self, run: BillRun, positions: list[Position]) -> None:
        """Collect from the batch's auto-pay invoicers, each account on its own (the
        gateway is called between two commits: `application.receivables.collection`), then the
        checkpoint. A crash mid-batch repeats the batch: every account's attempt for
        this run is found, not made again, so the statistics describe the attempts
        as they stand rather than what this pass did."""
        if self.gateway is None:
            self.gateway = payment_gateway(self.billing)
        started = time.monotonic_ns()
        collector = Collector(self.billing, self.gateway)
        accounts = self.billing.load_many(Account, [p.originator_id for p in positions])
        invoicers = [
            a for a in accounts.values()
            if a.invoicer is None and run.selection.includes(a.account_id, a.bill_group)
        ]  # fmt: skip
        loaded = self.billing.load_many(
            Receivables, [receivables_uuid(a.account_id) for a in invoicers]
        )
        statistics = CollectionStatistics()
        for account in invoicers:
            receivables = loaded.get(receivables_uuid(account.account_id))
            if receivables is None or receivables.autopay_token is None:
                continue  # not on auto-pay: one query for the batch, none per account
            outcome = collector.collect(
                account.account_id, run.run_id, run.settings.collection_type,
                run.posting_date, receivables,
            )  # fmt: skip
            statistics = statistics.plus(_collection_statistics(outcome.attempt, account))
        ms = (time.monotonic_ns() - started) // 1_000_000
        run.complete_collection_batch(
            run.collection_batches + 1,
            positions[-1].notification_id,
            statistics,
            ms,
            self.billing.clock(),
        )
        self.billing.save(run)

    def _group(self, group_id: str) -> BillGroup:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = self.billing.get_bill_group(group_id)
        return group

    def _members(self, invoicers: Iterable[Account]) -> dict[UUID, Account]:
        ids = [account_uuid(member) for account in invoicers for member in account.members]
        return self.billing.load_many(Account, ids) if ids else {}

    def _report(self, run: BillRun) -> None:
        self.on_progress(
            Progress(
                run_id=run.run_id,
                scanned=run.statistics.accounts_scanned,
                seen=run.statistics.accounts_seen,
                in_scope=run.accounts_in_scope,
                batches=run.batches,
            )
        )
        if self.on_checkpoint is not None:
            self.on_checkpoint(run)
