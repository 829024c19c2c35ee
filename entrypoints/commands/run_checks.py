"""`billrun run check|preview|describe`: before a run, and its one editable field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from application.runs.check import check_run
from application.runs.previews import Preview, preview_run
from application.runs.workflow import describe_run
from domain.runs.statistics import PreviewSummary
from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime
from entrypoints.representations_runs import description_json, preview_json


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
    digest; then each invoice (its account, lines, net, tax, gross, whether the
    run closes it) and each account (a member's lines are on its invoicer's
    invoice). When the run is executed, its statistics carry the digest of what it
    billed: `billrun run status` then says whether it equals the preview and, if
    data changed in between, what differs.
    """
    with runtime() as rt:
        preview = preview_run(rt.billing, run_id, batch_size or rt.settings.batch_size)
    if json_out:
        output.print_json({"run_id": run_id, **preview_json(preview.summary), **preview.as_json()})
        return
    output.console.print(preview_table(run_id, preview.summary))
    for table in preview_detail_tables(run_id, preview):
        output.console.print(table)


@refusals
def run_describe(
    run_id: str,
    description: Annotated[str, typer.Argument(help="Free text, e.g. 'January, key accounts'.")],
    json_out: JsonFlag = False,
) -> None:
    """Set a run's description: the one thing that can change once a run exists
    (everything else is fixed by its events). At most 500 characters."""
    with runtime() as rt:
        run, changed = describe_run(rt.billing, run_id, description)
    if json_out:
        output.print_json(description_json(run, changed))
        return
    output.console.print(f"run {run_id}: {run.description}")


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


DETAIL_ROWS = 50
"""Rows of each detail table printed; `--json` has them all."""


def preview_detail_tables(run_id: str, preview: Preview) -> list[Table]:
    """The preview per invoice and per account, with tax (the first DETAIL_ROWS
    of each; `--json` lists every one)."""
    invoices = Table(title=_detail_title(f"Invoices previewed for run {run_id}", preview.invoices))
    for column in ("account", "currency", "lines", "net", "tax", "gross", "closes"):
        invoices.add_column(column, justify="right" if column in _NUMBERS else "left")
    for invoice in preview.invoices[:DETAIL_ROWS]:
        invoices.add_row(
            invoice.account, invoice.currency, str(invoice.lines),
            output.number(invoice.net), output.number(invoice.tax),
            output.number(invoice.gross), "yes" if invoice.closes else "no (stays open)",
        )  # fmt: skip
    accounts = Table(title=_detail_title(f"Accounts previewed for run {run_id}", preview.accounts))
    for column in ("account", "currency", "lines", "net", "tax", "gross"):
        accounts.add_column(column, justify="right" if column in _NUMBERS else "left")
    for account in preview.accounts[:DETAIL_ROWS]:
        accounts.add_row(
            account.account, account.currency, str(account.lines),
            output.number(account.net), output.number(account.tax),
            output.number(account.gross),
        )  # fmt: skip
    return [invoices, accounts]


_NUMBERS = frozenset({"lines", "net", "tax", "gross"})


def _detail_title(title: str, rows: Sequence[object]) -> str:
    if len(rows) <= DETAIL_ROWS:
        return f"{title}: {len(rows)}"
    return f"{title}: first {DETAIL_ROWS} of {len(rows)} (--json lists every one)"
