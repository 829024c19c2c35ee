"""The `billrun` command.

Every read command takes `--json` (money as strings, dates ISO 8601); every
refusal prints what is wrong and where on stderr and exits non-zero, having
written nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from uuid import UUID

import typer
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from application.bill_run_executor import BillRunExecutor
from application.bill_run_executor import Progress as RunProgress
from application.errors import ApplicationError, InvalidInput, InvoiceNotFound, RunNotFound
from application.import_document import json_schema, parse_import
from domain.account import Account
from domain.bill_run import BillRun, Selection
from domain.errors import DomainError
from domain.ids import account_uuid
from domain.invoice import Invoice
from domain.periods import Period
from entrypoints import output
from entrypoints.runtime import Runtime, open_runtime
from infrastructure.settings import ConfigurationError, Settings

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="billrun",
    help="Event-sourced bill runs: bill recurring packages onto invoices, exactly once.\n\n"
    "Start with [bold]billrun demo[/bold], or: billrun import accounts.json; "
    "billrun run schedule 2026-01 --period-start 2026-01-01 --period-end 2026-01-31; "
    "billrun run execute 2026-01; billrun invoice list --run 2026-01.\n\n"
    "Configuration: BILLRUN_DATABASE_URL (unset: an embedded PostgreSQL under "
    "BILLRUN_HOME, default ./.billrun), BILLRUN_BATCH_SIZE (accounts per transaction).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Schedule, execute and inspect bill runs.", no_args_is_help=True)
invoice_app = typer.Typer(help="Find and read invoices.", no_args_is_help=True)
account_app = typer.Typer(help="Read accounts and their packages.", no_args_is_help=True)
schema_app = typer.Typer(help="Print the JSON Schema of billrun's input files.")
app.add_typer(run_app, name="run")
app.add_typer(invoice_app, name="invoice")
app.add_typer(account_app, name="account")
app.add_typer(schema_app, name="schema")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
DateOption = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], show_default=False)]


class UsageError(Exception):
    """Bad command-line input, reported like any other refusal."""


@app.callback()
def _configure(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=output.errors, show_path=False)],
    )


def refusals(command: Callable[P, R]) -> Callable[P, R]:
    """Turn billrun's refusals into a clear message on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except InvalidInput as error:
            output.errors.print(f"[red]error:[/red] {error}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except (ApplicationError, DomainError, UsageError, ConfigurationError) as error:
            output.errors.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


@contextmanager
def runtime() -> Iterator[Runtime]:
    with open_runtime(Settings.from_environment()) as opened:
        yield opened


# Import -----------------------------------------------------------------------


@app.command("import")
@refusals
def import_file(
    file: Annotated[Path, typer.Argument(help="A JSON import file (see docs/import-format.md).")],
    json_out: JsonFlag = False,
) -> None:
    """Load accounts and packages from a JSON file, all or nothing.

    Importing the same file again changes nothing; a changed file updates names,
    emails, bill groups, package descriptions, amounts and end dates. A bad file
    is refused whole, every problem listed with its path.
    """
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise UsageError(f"{file}: cannot read: {error.strerror}") from None
    document = parse_import(raw, str(file))
    with runtime() as rt:
        summary = rt.billing.import_accounts(document, str(file))
    if json_out:
        output.print_json(summary.__dict__)
        return
    output.console.print(
        f"{file}: {summary.accounts_opened} accounts opened, {summary.accounts_changed} changed, "
        f"{summary.accounts_unchanged} unchanged; {summary.packages_added} packages added "
        f"({summary.events} events)"
    )


# Runs -------------------------------------------------------------------------


@run_app.command("schedule")
@refusals
def run_schedule(
    run_id: Annotated[str, typer.Argument(help="Your name for the run, e.g. 2026-01.")],
    period_start: DateOption,
    period_end: DateOption,
    posting_date: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Date posted on every line [default: period end]"),
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="Bill only this bill group (repeat).")
    ] = None,
    account: Annotated[
        list[str] | None, typer.Option(help="Bill only this account (repeat).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Schedule a bill run for a bill period (no --group and no --account: all accounts).

    Packages are billed for every bill date within [period start, period end].
    Scheduling the same run id again with the same terms does nothing.
    """
    period = Period(period_start.date(), period_end.date())
    selection = Selection(accounts=tuple(account or ()), groups=tuple(group or ()))
    with runtime() as rt:
        outcome = rt.billing.schedule_run(
            run_id, period, posting_date.date() if posting_date else None, selection
        )
    if json_out:
        output.print_json({"created": outcome.created, **run_json(outcome.run)})
        return
    verb = "scheduled" if outcome.created else "was already scheduled"
    output.console.print(
        f"run {run_id} {verb}: period {outcome.run.period}, posting "
        f"{outcome.run.posting_date}, {outcome.run.selection.describe()}"
    )


@run_app.command("execute")
@refusals
def run_execute(
    run_id: str,
    json_out: Annotated[
        bool, typer.Option("--json", help="No progress bar; print statistics as JSON.")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Accounts per transaction [default: BILLRUN_BATCH_SIZE or 1000]"),
    ] = None,
) -> None:
    """Execute (or resume) a scheduled run: bill, invoice and close, batch by batch.

    Safe to repeat, to interrupt and to run in two processes at once: a completed
    run bills nothing more; an interrupted one resumes after its last batch.
    """
    with runtime() as rt:
        size = batch_size or rt.settings.batch_size
        if json_out:
            execution = BillRunExecutor(rt.billing, size).execute(run_id)
        else:
            with run_progress() as on_progress:
                execution = BillRunExecutor(rt.billing, size, on_progress).execute(run_id)
        run = execution.run
    if json_out:
        output.print_json({"already_completed": execution.already_completed, **run_json(run)})
        return
    if execution.already_completed:
        output.console.print(f"run {run_id} was already completed; nothing was billed.")
    output.console.print(statistics_table(run))


@contextmanager
def run_progress() -> Iterator[Callable[[RunProgress], None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=output.errors, transient=False) as progress:
        task = progress.add_task("billing accounts", total=None)

        def update(event: RunProgress) -> None:
            progress.update(
                task,
                total=event.in_scope,
                completed=event.scanned,
                description=f"run {event.run_id}: batch {event.batches}",
            )

        yield update


@run_app.command("status")
@refusals
def run_status(run_id: str, json_out: JsonFlag = False) -> None:
    """Show a run's state, progress and statistics (from the run-status read model)."""
    with runtime() as rt:
        row = rt.read_side.fresh_runs().get(run_id)
    if row is None:
        raise RunNotFound(run_id)
    if json_out:
        output.print_json(row.as_json())
        return
    table = Table(title=f"Bill run {run_id}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in row.as_json().items():
        shown = value
        if key == "totals":
            shown = ", ".join(f"{v} {c}" for c, v in value.items()) or "-"
        table.add_row(key.replace("_", " "), "-" if shown is None else str(shown))
    output.console.print(table)


@run_app.command("list")
@refusals
def run_list(json_out: JsonFlag = False) -> None:
    """List bill runs, newest first."""
    with runtime() as rt:
        rows = rt.read_side.fresh_runs().all()
    if json_out:
        output.print_json([row.as_json() for row in rows])
        return
    table = Table(title="Bill runs")
    for column in ("run", "status", "period", "posting", "invoices", "totals"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.run_id,
            row.status,
            f"{row.period_start} .. {row.period_end}",
            str(row.posting_date),
            str(row.counters["invoices"]),
            ", ".join(output.money(v, c) for c, v in row.totals.items()) or "-",
        )
    output.console.print(table)


def run_json(run: BillRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "period_start": run.period.start.isoformat(),
        "period_end": run.period.end.isoformat(),
        "posting_date": run.posting_date.isoformat(),
        "selection": run.selection.model_dump(mode="json"),
        "accounts_in_scope": run.accounts_in_scope,
        "batches": run.batches,
        "statistics": run.statistics.model_dump(mode="json"),
    }


def statistics_table(run: BillRun) -> Table:
    stats = run.statistics
    table = Table(title=f"Bill run {run.run_id}: {run.status.value}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("period", str(run.period))
    table.add_row("accounts in scope", str(run.accounts_in_scope))
    table.add_row("accounts billed", str(stats.accounts_billed))
    table.add_row("accounts with nothing due", str(stats.accounts_skipped))
    table.add_row("invoices", str(stats.invoices))
    table.add_row("lines", str(stats.lines))
    for currency, amount in stats.totals.items():
        table.add_row(f"total {currency}", f"{amount:,}")
    return table


# Invoices ---------------------------------------------------------------------


@invoice_app.command("list")
@refusals
def invoice_list(
    run: Annotated[str | None, typer.Option(help="Only invoices of this run.")] = None,
    account: Annotated[str | None, typer.Option(help="Only invoices of this account.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only invoices in this status (open, closed).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows shown in the table (JSON is never cut).")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """List invoices with their lines, in invoice-number order."""
    with runtime() as rt:
        rows = rt.read_side.fresh_invoices().search(run_id=run, account_id=account, status=status)
        if json_out:
            output.print_json_array(row.as_json() for row in rows)
            return
        table = Table(title="Invoices")
        for column in ("number", "account", "run", "status", "lines", "total"):
            table.add_column(column, justify="right" if column in ("lines", "total") else "left")
        shown = hidden = 0
        for row in rows:
            if shown >= limit:
                hidden += 1
                continue
            shown += 1
            table.add_row(
                row.display_number, row.account, row.run_id, row.status,
                str(len(row.lines)), output.money(row.total, row.currency),
            )  # fmt: skip
    output.console.print(table)
    if hidden:
        output.console.print(f"... and {hidden} more (raise --limit, or use --json)")


@invoice_app.command("show")
@refusals
def invoice_show(
    invoice: Annotated[
        str, typer.Argument(help="Invoice id (uuid) or number (42 or INV-00000042).")
    ],
    json_out: JsonFlag = False,
) -> None:
    """Show one invoice, rebuilt from its events."""
    with runtime() as rt:
        found = rt.billing.get_invoice(resolve_invoice_id(rt, invoice))
    if json_out:
        output.print_json(invoice_json(found))
        return
    title = f"Invoice {found.display_number or '(open)'}: {found.account_id}, run {found.run_id}"
    table = Table(title=title)
    for column in ("service period", "description", "source", "qty", "unit", "amount"):
        table.add_column(column, justify="right" if column in ("qty", "unit", "amount") else "left")
    for line in found.lines:
        table.add_row(
            f"{line.service_period_start} .. {line.service_period_end}", line.description,
            line.source, str(line.quantity), str(line.unit_amount), str(line.amount),
        )  # fmt: skip
    table.add_section()
    table.add_row("", "subtotal", "", "", "", str(found.subtotal))
    table.add_row("", "tax", "", "", "", str(found.tax))
    table.add_row("", f"total {found.currency}", "", "", "", str(found.total))
    output.console.print(table)


def resolve_invoice_id(rt: Runtime, text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        pass
    digits = text.upper().removeprefix("INV-")
    if not digits.isdigit():
        raise InvoiceNotFound(text)
    found = rt.read_side.fresh_invoices().id_of_number(int(digits))
    if found is None:
        raise InvoiceNotFound(text)
    return found


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "display_number": invoice.display_number,
        "account": invoice.account_id,
        "currency": invoice.currency,
        "status": invoice.status.value,
        "run_id": invoice.run_id,
        "posting_date": invoice.posting_date.isoformat() if invoice.posting_date else None,
        "subtotal": str(invoice.subtotal),
        "tax": str(invoice.tax),
        "total": str(invoice.total),
        "version": invoice.version,
        "lines": [line.model_dump(mode="json") for line in invoice.lines],
    }


# Accounts ---------------------------------------------------------------------


@account_app.command("show")
@refusals
def account_show(account_id: str, json_out: JsonFlag = False) -> None:
    """Show an account and its packages (with next bill dates), rebuilt from its events."""
    with runtime() as rt:
        account = rt.billing.get_account(account_id)
    if json_out:
        output.print_json(account_json(account))
        return
    output.console.print(
        f"[bold]{account.account_id}[/bold] {account.name} ({account.currency}, group "
        f"{account.bill_group}, invoices to {account.invoice_email or '-'})"
    )
    table = Table(title="Packages")
    for column in (
        "package",
        "description",
        "amount",
        "frequency",
        "timing",
        "start",
        "end",
        "next bill",
    ):
        table.add_column(column)
    for package in account.packages.values():
        t = package.terms
        table.add_row(
            t.package_id, t.description, str(t.amount), t.frequency.value, t.timing.value,
            str(t.start_date), str(t.end_date or "-"), str(package.next_bill_date),
        )  # fmt: skip
    output.console.print(table)


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.account_id,
        "aggregate_id": str(account_uuid(account.account_id)),
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "version": account.version,
        "packages": [
            {**p.terms.model_dump(mode="json"), "next_bill_date": p.next_bill_date.isoformat()}
            for p in account.packages.values()
        ],
    }


# Schemas ----------------------------------------------------------------------


@schema_app.command("import")
def schema_import() -> None:
    """Print the JSON Schema of the import file."""
    output.print_json(json_schema())


# Demo -------------------------------------------------------------------------


@app.command()
@refusals
def demo(
    accounts: Annotated[int, typer.Option(min=1, help="How many demo accounts to bill.")] = 60,
) -> None:
    """Zero configuration: import demo accounts, then schedule and execute a real bill run.

    Runs against BILLRUN_DATABASE_URL, or an embedded PostgreSQL under
    BILLRUN_HOME. Run it twice: the second run finds nothing left to bill.
    """
    from entrypoints.demo import run_demo

    with runtime() as rt:
        run_demo(rt, accounts, run_progress)


def main() -> None:
    app()


def today() -> date:
    return date.today()  # noqa: DTZ011 - a calendar date for the operator, not a timestamp
