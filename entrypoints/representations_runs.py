"""The JSON of bill runs: what `billrun run ... --json` prints and what the HTTP
API answers for the same thing (one serializer: `entrypoints/representations.py`
holds accounts, usage, charges, payments, schedules and rates; this module runs).

Money is a decimal string per currency, dates ISO 8601.
"""

from __future__ import annotations

from typing import Any

from application.runs.cancel import CancelOutcome
from application.shared.errors import RunNotFound
from domain.runs.bill_run import BillRun
from domain.runs.settings import CancelMode, WorkflowState
from domain.runs.statistics import BatchStatistics, PreviewSummary
from entrypoints.presenters import base_totals, preview_comparison, run_steps, run_totals
from projections.catalog import ReadSide
from projections.runs import RunRow, totals_json

Json = dict[str, Any]


_STEPS = (
    "run_dunning", "bill_packages", "bill_usage", "run_contracts", "bill_charges",
    "run_invoices", "collect_payments",
)  # fmt: skip
"""The settings that switch a run's AR, billing and invoicing steps on, in the seed's
order (dunning first, collection last)."""


def settings_rows(settings: dict[str, Any] | None) -> dict[str, str]:
    """A run's settings (`RunSettings` as JSON) as an operator reads them."""
    if settings is None:  # a read model built before it kept them
        return {"steps": "unknown", "categories": "unknown"}
    steps = [step for step in _STEPS if settings.get(step)]
    categories = settings.get("categories") or []
    rows = {
        "steps": ", ".join(steps) or "none",
        "categories": ", ".join(categories) if categories else "all",
        "render invoices": "yes" if settings.get("render_invoices") else "no",
        "deliver invoices": "yes" if settings.get("deliver_invoices") else "no",
    }
    if settings.get("catch_up"):
        rows["catch up"] = "yes: stranded bill dates before the period are billed"
    if settings.get("collect_payments"):
        rows["collection type"] = str(settings.get("collection_type", "account_balance"))
    return rows


def run_json(run: BillRun) -> Json:
    """A run as its events leave it (`run schedule|execute --json`)."""
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "period_start": run.period.start.isoformat(),
        "period_end": run.period.end.isoformat(),
        "posting_date": run.posting_date.isoformat(),
        "selection": run.selection.model_dump(mode="json"),
        "settings": run.settings.model_dump(mode="json"),
        "accounts_in_scope": run.accounts_in_scope,
        "batches": run.batches,
        "workflow_state": run.workflow_state.value,
        "totals": totals_json(run_totals(run.statistics)),
        "base_totals": totals_json(base_totals(run.statistics)),
        "statistics": run.statistics.model_dump(mode="json"),
    }


def run_status_now(read_side: ReadSide, run: BillRun) -> Json:
    """`run status --json` now, as the CLI, the API and the console show it: the
    run-status read model's row (caught up) with what only the run knows."""
    row = read_side.fresh_runs().get(run.run_id)
    if row is None:  # the run exists (it was loaded): a read model rebuilt without it
        raise RunNotFound(run.run_id)
    return run_status_json(row, run)


def run_status_json(row: RunRow, run: BillRun) -> Json:
    """`run status --json` now: the run-status read model's row, with what only the
    run knows (its workflow, preview, parked accounts, steps and failure)."""
    shown = row.as_json()
    shown["workflow_state"] = run.workflow_state.value
    shown["description"] = run.description
    shown["preview"] = preview_comparison(run)
    shown["parked"] = run.parked
    # Bill dates before the period that no run billed, left owed by this run.
    shown["stranded_bill_dates"] = run.statistics.stranded
    shown["step_log"] = run_steps(run)
    shown["failure"] = run.failure
    return shown


def run_past_json(past: BillRun, as_of: str | None) -> Json:
    """`run status --as-of|--version --json`: the run rebuilt as it was then."""
    shown = {"as_of": as_of, "version": past.version, **run_json(past)}
    shown["description"] = past.description
    shown["parked"] = past.parked
    return shown


def run_report_json(report: Json, run: BillRun) -> Json:
    """`run report --json`: the run-report read model's figures completed by the
    run itself, which knows the states the report's timestamps cannot tell
    (failed, cancelled, collecting) and the account figures as the run defines
    them (the report's batch rows miss retries and parked accounts)."""
    stats = run.statistics
    return {
        **report,
        "status": run.status.value,
        "parked": run.parked,
        "receivables": ar_summary(run),
        "accounts": {
            "in_scope": run.accounts_in_scope,
            "scanned": stats.accounts_scanned,
            "seen": stats.accounts_seen,
            "billed": stats.accounts_billed,
            "skipped_nothing_due": stats.accounts_skipped,
            "parked": stats.accounts_parked,
            "stranded_bill_dates": stats.stranded,
        },
        "totals": totals_json(run_totals(stats)),
        "base_totals": totals_json(base_totals(stats)),
    }


def ar_summary(run: BillRun) -> Json:
    """The run's AR steps: dunning (first) and payment collection (last)."""
    collection = run.collection
    return {
        "dunning_stages_applied": run.statistics.dunning_applied,
        "accounts_suspended": run.statistics.accounts_suspended,
        "collection_attempts": collection.attempts,
        "collection_approved": collection.approved,
        "collection_declined": collection.declined,
        "collection_errors": collection.errors,
        "collection_pending": collection.pending,
        "collected": collection.collected,
    }


def statistics_json(run: BillRun) -> Json:
    """`run retry --json`'s figures, and the statistics of a run over HTTP."""
    return {"run_id": run.run_id, **run.statistics.model_dump(mode="json")}


def preview_json(summary: PreviewSummary) -> Json:
    return {
        "digest": summary.digest,
        "invoices": summary.invoices,
        "lines": summary.lines,
        "totals": {
            currency: {kind: str(amount) for kind, amount in kinds.items()}
            for currency, kinds in summary.totals.items()
        },
        "log_position": summary.log_position,
    }


def cancel_json(run_id: str, mode: CancelMode, outcome: CancelOutcome) -> Json:
    return {
        "run_id": run_id,
        "mode": mode.value,
        "invoices_cancelled": outcome.invoices_cancelled,
        "invoices_left": outcome.invoices_left,
        "accounts_reopened": outcome.accounts_reopened,
    }


def description_json(run: BillRun, changed: bool) -> Json:
    """`run describe --json`: the description now and whether this call changed it."""
    return {"run_id": run.run_id, "description": run.description, "changed": changed}


def disabled_json(run: BillRun, changed: bool) -> Json:
    return {"run_id": run.run_id, "disabled": run.disabled, "changed": changed}


def retry_json(run_id: str, account: str, statistics: BatchStatistics) -> Json:
    """`run retry --json`: what billing the parked account added to the run."""
    return {"run_id": run_id, "account": account, **statistics.model_dump(mode="json")}


def process_json(run_id: str, before: WorkflowState, after: WorkflowState) -> Json:
    """`run process --json`: the workflow step taken."""
    return {"run_id": run_id, "from": before.value, "to": after.value}
