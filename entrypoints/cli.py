"""The `billrun` command.

Every read command takes `--json` (money as strings, dates ISO 8601); every
refusal prints what is wrong and where on stderr and exits non-zero, having
written nothing. The command groups live in `entrypoints/commands/`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import psycopg
import typer
from eventsourcing.persistence import InterfaceError as PersistenceInterfaceError
from eventsourcing.persistence import OperationalError as PersistenceOperationalError
from psycopg_pool import PoolTimeout
from rich.logging import RichHandler
from rich.markup import escape

from entrypoints import output
from entrypoints.commands.accounts import account_app
from entrypoints.commands.audit import audit_app
from entrypoints.commands.charges import charge_app
from entrypoints.commands.contracts import contract_app
from entrypoints.commands.documents import invoice_pdf, run_documents
from entrypoints.commands.history import history
from entrypoints.commands.importing import demo, import_file, schema_app
from entrypoints.commands.invoices import invoice_app
from entrypoints.commands.payments import ar_app, payment_app
from entrypoints.commands.projections import projections_app
from entrypoints.commands.rates import rates_app
from entrypoints.commands.relay import relay_app
from entrypoints.commands.run_checks import run_check, run_describe, run_preview
from entrypoints.commands.run_lifecycle import run_cancel, run_process
from entrypoints.commands.runs import run_app
from entrypoints.commands.schedules import schedule_app, scheduler
from entrypoints.commands.usage import usage_app
from entrypoints.commands.worker import worker
from infrastructure.persistence import DatabaseBusy

app = typer.Typer(
    name="billrun",
    help="Event-sourced bill runs: bill recurring packages onto invoices, exactly once.\n\n"
    "Start with [bold]billrun demo[/bold], or: billrun import accounts.json; "
    "billrun run schedule 2026-01 --period-start 2026-01-01 --period-end 2026-01-31; "
    "billrun run execute 2026-01; billrun invoice list --run 2026-01.\n\n"
    "Auditors: billrun history --run 2026-01 --jsonl; billrun audit verify.\n\n"
    "Configuration: BILLRUN_DATABASE_URL (unset: an embedded PostgreSQL under "
    "BILLRUN_HOME, default ./.billrun), BILLRUN_BATCH_SIZE (accounts per transaction).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command("import")(import_file)
app.command("demo")(demo)
app.command("history")(history)
run_app.command("documents")(run_documents)
run_app.command("check")(run_check)
run_app.command("preview")(run_preview)
run_app.command("describe")(run_describe)
run_app.command("cancel")(run_cancel)
run_app.command("process")(run_process)
invoice_app.command("pdf")(invoice_pdf)
app.add_typer(run_app, name="run")
app.add_typer(invoice_app, name="invoice")
app.add_typer(account_app, name="account")
app.add_typer(payment_app, name="payment")
app.add_typer(ar_app, name="ar")
app.add_typer(usage_app, name="usage")
app.add_typer(charge_app, name="charge")
app.add_typer(contract_app, name="contract")
app.add_typer(rates_app, name="rates")
app.add_typer(audit_app, name="audit")
app.add_typer(projections_app, name="projections")
app.add_typer(relay_app, name="relay")
app.command("worker")(worker)
app.add_typer(schedule_app, name="schedule")
app.command("scheduler")(scheduler)
app.add_typer(schema_app, name="schema")


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


DATABASE_FAULT = 3
"""Exit code when PostgreSQL kept billrun waiting too long or dropped its connection
(2 is bad input refused): nothing half-written, safe to re-run."""


def main() -> None:
    try:
        app()
    except DatabaseBusy as error:
        _fault(str(error))
    except (
        PersistenceInterfaceError,
        PersistenceOperationalError,
        psycopg.InterfaceError,
        psycopg.OperationalError,
        PoolTimeout,
    ) as error:
        # The library already retried ten times: the server went away, restarted
        # or keeps terminating billrun's sessions. Every save is one transaction,
        # so what committed is whole and a run resumes from its last checkpoint.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        _fault(
            f"lost the connection to PostgreSQL ({reason}). What was committed stays "
            "committed and nothing was half-written; it is safe to re-run (a bill run "
            "resumes where it stopped)."
        )


def _fault(message: str) -> None:
    output.errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(DATABASE_FAULT)
