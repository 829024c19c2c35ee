"""Cancelling a bill run (`billrun run cancel R --reopen | --discard`).

The run's invoices that are not final are cancelled (drafts and quarantined
ones; rejected and cancelled ones stay as they are). With `--reopen`, every
account the run billed gets back what it billed: package periods (next bill
dates rewind), usage, one-off charges and contract penalties are unbilled
again, so a later run bills them, once. With `--discard` they stay billed and
are written off. Refused, with nothing written, when:

- an invoice of the run is approved or delivered (final: correct it with a new
  document);
- an invoice the run opened is still open (its close type left it open: it may
  hold later runs' lines);
- reopening would rewind a package a later run billed after this one, or a
  bill date this run left owed was billed since (cancel the later run first);
- the run is running (let it complete, then cancel it).

Everything is saved in one transaction: the run, its invoices, its accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from application.receivables.withdrawals import withdraw_not_owed
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from domain.billing.account import Account
from domain.billing.events import (
    ChargeBilled,
    ContractPenaltyApplied,
    PackageBilled,
    UsageBilled,
    ZeroInvoiceIssued,
)
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.runs.events import RunCancelled
from domain.runs.settings import CancelMode, RunStatus
from domain.shared.errors import AccountError
from domain.shared.ids import run_uuid
from domain.shared.model import Aggregate
from infrastructure.topics import topic_of

BILLED_TOPICS = [
    topic_of(e)
    for e in (PackageBilled, UsageBilled, ChargeBilled, ContractPenaltyApplied, ZeroInvoiceIssued)
]
CANCELLABLE = (ReviewStatus.DRAFT, ReviewStatus.QUARANTINED)


class RunCancelRefused(ApplicationError):
    pass


@dataclass(frozen=True)
class WrittenOff:
    """What runs cancelled with `--discard` billed on an account: still billed (no
    run bills it again), but written off. Each maps an id to the discarded run."""

    charges: dict[str, str]
    usage: dict[str, str]


def written_off(billing: Billing, account: Account) -> WrittenOff:
    """The account's charges and usage records billed by runs cancelled with
    discard (one query for the discarded runs, whatever the account's history)."""
    discarded = set(
        billing.queries.originators_with([topic_of(RunCancelled)], "mode", CancelMode.DISCARD.value)
    )
    charges: dict[str, str] = {}
    usage: dict[str, str] = {}
    for run_id, billed in account.runs.items():
        if run_uuid(run_id) in discarded:
            charges.update(dict.fromkeys(billed.charge_ids, run_id))
            usage.update(dict.fromkeys(billed.usage_ids, run_id))
    return WrittenOff(charges, usage)


@dataclass(frozen=True)
class CancelOutcome:
    run_id: str
    mode: CancelMode
    invoices_cancelled: int
    invoices_left: int
    """Already rejected or cancelled: final, left as they were."""
    accounts_reopened: int


def cancel_run(billing: Billing, run_id: str, mode: CancelMode, reason: str) -> CancelOutcome:
    run = billing.get_run(run_id)
    if run.status is RunStatus.RUNNING:
        raise RunCancelRefused(
            f"run {run_id} is running: let it complete (or resume it), then cancel it"
        )
    at = billing.clock()
    queries = billing.queries
    invoices = list(
        billing.load_many(
            Invoice, queries.originators_with([topic_of(InvoiceOpened)], "run_id", run_id)
        ).values()
    )
    _refuse_final_or_open(run_id, invoices)
    cancelled = 0
    for invoice in invoices:
        if invoice.review_status in CANCELLABLE:
            invoice.cancel(f"run {run_id} cancelled: {reason}", at)
            cancelled += 1
    accounts: list[Account] = []
    if mode is CancelMode.REOPEN:
        ids = queries.originators_with(BILLED_TOPICS, "run_id", run_id)
        accounts = list(billing.load_many(Account, ids).values())
        refusals = []
        for account in accounts:
            try:
                account.reopen_run(run_id, at)
            except AccountError as error:
                refusals.append(str(error))
        if refusals:
            raise RunCancelRefused(f"run {run_id} cannot be reopened: " + "; ".join(refusals))
    run.cancel(mode, reason, cancelled, at)
    reopened = sum(1 for a in accounts if a.has_pending_events)
    changed: list[Aggregate] = [a for a in (*invoices, *accounts) if a.has_pending_events]
    billing.save(*changed, *withdraw_not_owed(billing, invoices, at), run)
    return CancelOutcome(
        run_id,
        mode,
        invoices_cancelled=cancelled,
        invoices_left=len(invoices) - cancelled,
        accounts_reopened=reopened,
    )


def _refuse_final_or_open(run_id: str, invoices: list[Invoice]) -> None:
    final = sorted(
        i.name
        for i in invoices
        if i.review_status is ReviewStatus.APPROVED or i.delivery is not None
    )
    if final:
        raise RunCancelRefused(
            f"run {run_id} has approved or delivered invoices ({', '.join(final)}): they are "
            "final; correct them with new documents (credits), not by cancelling the run"
        )
    still_open = sorted(str(i.id) for i in invoices if not i.is_closed)
    if still_open:
        raise RunCancelRefused(
            f"run {run_id} opened invoices that are still open ({', '.join(still_open)}), "
            "which may carry later runs' lines: close them first"
        )
