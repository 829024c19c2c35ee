"""`billrun run check|preview|describe`: before a run, and its one editable field."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from application.previews import differences, preview_run
from application.run_check import check_run
from domain.bill_run import BillRun, PreviewSummary
from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime


@refusals
def run_check(run_id: str, json_out: JsonFlag = False) -> None:
    """Billing checks before a run: errors (execution refuses to start while any
    remains) and warnings.

    Errors: a currency pair the selected accounts need without a rate; an account
    without an invoice email in a group that delivers by email; invoices rendered
    under the built-in demo seller (set BILLRUN_SELLER_NAME, _IBAN, _EMAIL).
    Warnings: accounts without an invoice email (family members need none),
    active packages priced 0 or below, other unfinished runs (not cancelled) over
    an overlapping period. Exits 1 when there are errors.
    """
    with runtime() as rt:
        report = check_run(rt.billing, run_id)
    if json_out:
        output.print_json(report.as_json())
    else:
        table = Table(title=f"Checks of run {run_id}")
        for column in ("severity", "check", "count", "what", "examples"):
            table.add_column(column, justify="right" if column == "count" else "left")
        for finding in report.findings:
            table.add_row(
                finding.severity, finding.check, str(finding.count or ""), finding.message,
                ", ".join(finding.accounts),
            )  # fmt: skip
        if report.findings:
            output.console.print(table)
        errors, warnings = len(report.errors), len(report.warnings)
        output.console.print(
            f"run {run_id}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}"
            + ("; it will not start until the errors are fixed" if errors else "")
        )
    if report.errors:
        raise typer.Exit(1)


@refusals
def run_preview(
    run_id: str,
    json_out: JsonFlag = False,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Accounts per page [default: BILLRUN_BATCH_SIZE]")
    ] = None,
) -> None:
    """The pre-invoicing report: what executing the run now would bill, computed by
    the same code that bills, writing nothing but the preview on the run.

    Shows the invoices, lines and amounts per currency and kind of line, and a
    digest. When the run is executed, its statistics carry the digest of what it
    billed: `billrun run status` then says whether it equals the preview and, if
    data changed in between, what differs.
    """
    with runtime() as rt:
        summary = preview_run(rt.billing, run_id, batch_size or rt.settings.batch_size)
    if json_out:
        output.print_json({"run_id": run_id, **preview_json(summary)})
        return
    output.console.print(preview_table(run_id, summary))


@refusals
def run_describe(
    run_id: str,
    description: Annotated[str, typer.Argument(help="Free text, e.g. 'January, key accounts'.")],
    json_out: JsonFlag = False,
) -> None:
    """Set a run's description: the one thing that can change once a run exists
    (everything else is fixed by its events)."""
    with runtime() as rt:
        run = rt.billing.get_run(run_id)
        run.describe(description, rt.billing.clock())
        changed = run.has_pending_events
        if changed:
            rt.billing.save(run)
    if json_out:
        output.print_json({"run_id": run_id, "description": run.description, "changed": changed})
        return
    output.console.print(f"run {run_id}: {description}")


def preview_json(summary: PreviewSummary) -> dict[str, object]:
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


def preview_table(run_id: str, summary: PreviewSummary) -> Table:
    table = Table(
        title=f"Preview of run {run_id}: {summary.invoices} invoices, {summary.lines} lines"
    )
    for column in ("currency", "kind", "amount"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    for currency, kinds in summary.totals.items():
        for kind, amount in kinds.items():
            table.add_row(currency, kind, output.money(amount, currency))
    table.caption = f"digest {summary.digest[:16]}…"
    return table


def preview_comparison(run: BillRun) -> str | None:
    """How the completed run compares with its preview (None: none, or not done)."""
    if run.preview is None or not run.is_completed:
        return None
    found = differences(run.preview, run.statistics)
    if not found:
        return "equal to its preview (same digest)"
    return "differs from its preview: " + "; ".join(found)
