"""The pre-invoicing report (`billrun run preview`) and its comparison with the
execution that follows.

A preview is computed by the executor's own billing code over the same batches
(`BillRunExecutor.preview`), saved nowhere but in the run's `RunPreviewed`
event: its digest, counts and amounts per currency and kind of line. When the
run completes, its statistics carry the same measures of what it billed, and
`differences` says whether the two agree and, if data changed in between, what
differs.
"""

from __future__ import annotations

from decimal import Decimal

from application.bill_run_executor import BillRunExecutor
from application.billing import Billing
from domain.bill_run import BatchStatistics, PreviewSummary


def preview_run(billing: Billing, run_id: str, batch_size: int) -> PreviewSummary:
    """Compute the run's preview and record it on the (still scheduled) run."""
    summary = BillRunExecutor(billing, batch_size).preview(run_id)
    run = billing.get_run(run_id)
    run.record_preview(summary, billing.clock())
    if run.has_pending_events:
        billing.save(run)
    return summary


def differences(preview: PreviewSummary, executed: BatchStatistics) -> list[str]:
    """What the execution billed differently from its preview; empty when equal."""
    if preview.digest == executed.content_digest:
        return []
    found = []
    if preview.lines != executed.lines:
        found.append(f"lines: previewed {preview.lines}, billed {executed.lines}")
    for currency in sorted(set(preview.totals) | set(executed.billed)):
        before, after = preview.totals.get(currency, {}), executed.billed.get(currency, {})
        for kind in sorted(set(before) | set(after)):
            a, b = before.get(kind, Decimal(0)), after.get(kind, Decimal(0))
            if a != b:
                found.append(f"{currency} {kind}: previewed {a}, billed {b}")
    if not found:
        found.append("the same amounts, but other lines or invoices (ids, accounts or taxes)")
    return found
