"""The `billrun` command.

Every read command takes `--json` (money as strings, dates ISO 8601); every
refusal prints what is wrong and where on stderr and exits non-zero, having
written nothing. The command groups live in `entrypoints/commands/`.

Each command's module is imported only when that command runs: importing them
all (the application, eventsourcing, psycopg, FastStream, WeasyPrint) cost
0.75 s before `billrun --help` printed a line (docs/benchmarks.md, startup).
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

# name -> (module, attribute, the one-line help `billrun --help` lists). The help
# is repeated here so that listing the commands imports none of them;
# tests/unit/test_cli_startup.py checks it matches each command's own.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "import": (
        "entrypoints.commands.importing",
        "import_file",
        "Load accounts and packages from a JSON file, all or nothing.",
    ),
    "demo": (
        "entrypoints.commands.importing",
        "demo",
        "Zero configuration: import demo accounts, then schedule and execute a real bill run.",
    ),
    "history": (
        "entrypoints.commands.history",
        "history",
        "Replay history as an auditor: every stored event with its notification id, "
        "timestamp, aggregate, version, type and payload, in commit order.",
    ),
    "worker": (
        "entrypoints.commands.worker",
        "worker",
        "Run the outbox relay and the consumers until SIGINT or SIGTERM.",
    ),
    "serve": (
        "entrypoints.commands.serve",
        "serve",
        "Serve the HTTP API and the console (FastAPI under uvicorn) until SIGINT or SIGTERM.",
    ),
    "scheduler": (
        "entrypoints.commands.schedules",
        "scheduler",
        "Queue due runs and execute queued ones until SIGINT or SIGTERM.",
    ),
    "run": ("entrypoints.cli", "run_commands", "Schedule, execute and inspect bill runs."),
    "invoice": ("entrypoints.cli", "invoice_commands", "Find, read and review invoices."),
    "account": (
        "entrypoints.commands.accounts",
        "account_app",
        "Read accounts, their packages and balances; set payment terms, auto-pay and "
        "buyer details.",
    ),
    "payment": (
        "entrypoints.commands.payments",
        "payment_app",
        "Record payments received, list them, and reconcile pending collections.",
    ),
    "ar": (
        "entrypoints.commands.payments",
        "ar_app",
        "Accounts receivable across accounts: what is open and how overdue.",
    ),
    "usage": (
        "entrypoints.commands.usage",
        "usage_app",
        "Record usage of accounts' packages (one record, or a CSV file) and list it.",
    ),
    "charge": (
        "entrypoints.commands.charges",
        "charge_app",
        "Add one-off charges (a negative amount: a credit) to accounts and list them.",
    ),
    "contract": (
        "entrypoints.commands.contracts",
        "contract_app",
        "Contracts on accounts or packages: a minimum term with an early-termination fee, "
        "a minimum spend over the term, or both.",
    ),
    "entity": (
        "entrypoints.commands.entities",
        "entity_app",
        "The legal entities invoices are issued by: each with its own address, ids, "
        "bank accounts and gapless numbering; a bill group names the one that bills it.",
    ),
    "rates": (
        "entrypoints.commands.rates",
        "rates_app",
        "Exchange rates (fixed per bill run when it starts) and the base currency.",
    ),
    "audit": (
        "entrypoints.commands.audit",
        "audit_app",
        "Verify that nothing in the event log was altered, deleted or inserted.",
    ),
    "projections": (
        "entrypoints.commands.projections",
        "projections_app",
        "See and rebuild the read models (after a rules change).",
    ),
    "relay": (
        "entrypoints.commands.relay",
        "relay_app",
        "Publish every public event to NATS JetStream (stream BILLING, subjects "
        "billing.<aggregate>.<Event>, CloudEvents) and see how far the relay got. "
        "Configuration: BILLRUN_NATS_URL (unset: an embedded nats-server under "
        "BILLRUN_HOME), BILLRUN_NATS_PREFIX, BILLRUN_SOURCE.",
    ),
    "schedule": (
        "entrypoints.commands.schedules",
        "schedule_app",
        "When bill runs are queued: one-off, daily, weekly or monthly, each occurrence "
        "billing the period its rule gives. `billrun scheduler` (or `billrun worker`) "
        "queues and executes them.",
    ),
    "tenant": (
        "entrypoints.commands.tenants",
        "tenant_app",
        "Tenants: isolated billing books (a PostgreSQL schema, read models, invoice "
        "numbers and NATS namespace each) in one deployment.",
    ),
    "apikey": (
        "entrypoints.commands.tenants",
        "apikey_app",
        "API keys: one tenant and one role each (admin, operator, auditor, service); "
        "stored hashed, shown once.",
    ),
    "schema": (
        "entrypoints.commands.importing",
        "schema_app",
        "Print the JSON Schema of billrun's input files.",
    ),
}


@cache
def run_commands() -> typer.Typer:
    """`billrun run`: its own module's commands and those kept beside their helpers."""
    from entrypoints.commands.documents import run_documents
    from entrypoints.commands.run_checks import run_check, run_describe, run_preview
    from entrypoints.commands.run_lifecycle import run_cancel, run_process
    from entrypoints.commands.runs import run_app

    run_app.command("documents")(run_documents)
    run_app.command("check")(run_check)
    run_app.command("preview")(run_preview)
    run_app.command("describe")(run_describe)
    run_app.command("cancel")(run_cancel)
    run_app.command("process")(run_process)
    return run_app


@cache
def invoice_commands() -> typer.Typer:
    from entrypoints.commands.documents import invoice_documents_command, invoice_pdf
    from entrypoints.commands.invoices import invoice_app

    invoice_app.command("pdf")(invoice_pdf)
    invoice_app.command("documents")(invoice_documents_command)
    return invoice_app


def load_command(name: str) -> Any:
    """The click command `billrun NAME` runs, importing its module now."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    if module == __name__:  # a group assembled from several modules
        target = target()
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        # Tenants and keys live in the control schema, above every tenant.
        return group if name in ("tenant", "apikey") else with_tenant_option(group)
    return with_tenant_option(
        typer.main.get_command_from_info(
            typer.models.CommandInfo(name=name, callback=target),
            pretty_exceptions_short=True,
            rich_markup_mode="rich",
        )
    )


TENANT_HELP = (
    "The tenant whose billing book to use (default: BILLRUN_TENANT, else the default tenant)."
)


def with_tenant_option(command: Any) -> Any:
    """Give every command `--tenant` (a command with its own, such as `apikey
    create`, keeps it): `entrypoints.common.runtime` opens that tenant's book."""
    for sub in getattr(command, "commands", {}).values():
        with_tenant_option(sub)
    if hasattr(command, "commands") or any(p.name == "tenant" for p in command.params):
        return command
    command.params.append(_tenant_parameter())
    return command


def _remember_tenant(value: str | None) -> str | None:
    from entrypoints.tenant_choice import choose_tenant

    if value is not None:
        choose_tenant(value)
    return value


def _tenant_declaration(
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", metavar="NAME", help=TENANT_HELP, callback=_remember_tenant),
    ] = None,
) -> None:
    """Only its parameter is used (`_tenant_parameter`)."""


@cache
def _tenant_parameter() -> Any:
    """The `--tenant` option, built by typer itself from a declaration (one object
    shared by every command: it holds no state), not passed to the command."""
    holder = typer.main.get_command_from_info(
        typer.models.CommandInfo(name="tenant", callback=_tenant_declaration),
        pretty_exceptions_short=True,
        rich_markup_mode="rich",
    )
    parameter = holder.params[0]
    parameter.expose_value = False
    return parameter


class LazyCommands(TyperGroup):
    """billrun's top level: lists every command from `COMMANDS` without importing
    it, and imports a command's module only when it is the one that runs."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        # Only listed (help, completion): a stand-in that carries the help line.
        return typer.core.TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][2])

    def main(self, args: Sequence[str] | None = None, *rest: Any, **options: Any) -> Any:
        if wants_help(list(sys.argv[1:] if args is None else args)):
            from entrypoints import help_format

            help_format.install()
        return super().main(args, *rest, **options)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.add_command(load_command(args[0]), args[0])
            started()
        return super().resolve_command(ctx, args)


GROUPS = {
    name
    for name, (_, attribute, _) in COMMANDS.items()
    if attribute.endswith(("_app", "_commands"))
}


def wants_help(args: list[str]) -> bool:
    """Whether these arguments print help (`--help`, or no command, or a group
    alone): only then is typer's help module worth importing and adjusting."""
    rest = [arg for arg in args if arg not in ("-v", "--verbose")]
    return not rest or "--help" in rest or (len(rest) == 1 and rest[0] in GROUPS)


app = typer.Typer(
    name="billrun",
    cls=LazyCommands,
    help="Event-sourced bill runs: bill recurring packages onto invoices, exactly once.\n\n"
    "Start with [bold]billrun demo[/bold], or: billrun import accounts.json; "
    "billrun run schedule 2026-01 --period-start 2026-01-01 --period-end 2026-01-31; "
    "billrun run execute 2026-01; billrun invoice list --run 2026-01.\n\n"
    "Auditors: billrun history --run 2026-01 --jsonl; billrun audit verify.\n\n"
    "Configuration: BILLRUN_DATABASE_URL (unset: an embedded PostgreSQL under "
    "BILLRUN_HOME, default ./.billrun), BILLRUN_BATCH_SIZE (accounts per transaction), "
    "BILLRUN_TENANT (or --tenant: whose billing book; see billrun tenant).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def _configure(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", metavar="NAME", help=TENANT_HELP)
    ] = None,
) -> None:
    configure_logging(verbose)
    from entrypoints.tenant_choice import choose_tenant

    choose_tenant(tenant)  # None too: forget a previous invocation's choice


def configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    from entrypoints.consoles import errors

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False)],
    )
    # fontTools logs each table of each font it subsets (it stands in for a missing
    # libharfbuzz-subset), WeasyPrint each layout step of each PDF: noise to an
    # operator even with -v.
    for library in ("fontTools", "weasyprint.progress"):
        logging.getLogger(library).setLevel(logging.WARNING)


def all_commands() -> dict[str, Any]:
    """Every command loaded (for docs and tests that walk the whole tree)."""
    return {name: load_command(name) for name in COMMANDS}


DATABASE_FAULT = 3
"""Exit code when PostgreSQL kept billrun waiting too long or dropped its connection
(2 is bad input refused): nothing half-written, safe to re-run."""


REPRODUCIBLE_DOCUMENTS = {"SOURCE_DATE_EPOCH": "0"}
"""Set for the whole process when it starts. Without libharfbuzz-subset, WeasyPrint
subsets fonts with fontTools, which stamps each subset with the current time
(`head.modified`), so the same invoice rendered a second later had other bytes
(and another content hash). fontTools takes the reproducible-builds variable
instead when it is set: invoices are documents, not builds of fonts. An operator's
own value is kept. Set here, once, rather than by the renderer on first use: the
environment belongs to the process, not to one of its objects."""


def prepare_process() -> None:
    """What a process that may render invoices sets once, when it starts: `main`
    here, and the test suite's conftest (its own entry point)."""
    for name, value in REPRODUCIBLE_DOCUMENTS.items():
        os.environ.setdefault(name, value)


def main() -> None:
    prepare_process()
    # Importing a command allocates a few hundred thousand objects that all live
    # until the process ends: collecting cycles among them while they are created
    # finds nothing to free. `started` turns the collector back on.
    gc.disable()
    try:
        app()
    except SystemExit as done:
        exit_now(done)
    except Exception as error:
        message = database_fault(error)
        if message is None:
            raise
        _fault(message)


def started() -> None:
    """The command's modules are imported: keep the collector from walking them
    again at every full collection (they are never garbage), then let it run for
    what the command itself allocates."""
    gc.freeze()
    gc.enable()


def exit_now(done: SystemExit) -> NoReturn:
    """End the process with the status of `done` once the command has finished and
    its output is flushed, without tearing down every module and object first:
    that teardown was 0.1 - 0.2 s of CPU after a read command had printed its
    result (docs/benchmarks.md, CLI reads), for memory the system frees at once.

    The ordinary exit is kept when it may still have work to do: a thread that
    is not a daemon still running, a status that is not a number (Python prints
    it), or output that cannot be flushed (Python reports it as it always did).
    """
    code = done.code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if not isinstance(code, int | None) or any(not t.daemon for t in others):
        raise done
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise done from None
    os._exit(code or 0)


def database_fault(error: Exception) -> str | None:
    """What to tell the operator when PostgreSQL failed billrun, None for any other error.

    The database libraries are imported here, after the fact (they are loaded
    already when one of them raised), so that starting billrun imports none of them.
    """
    from eventsourcing.persistence import InterfaceError as PersistenceInterfaceError
    from eventsourcing.persistence import OperationalError as PersistenceOperationalError
    from psycopg import InterfaceError, OperationalError
    from psycopg_pool import PoolTimeout

    from infrastructure.persistence import DatabaseBusy

    if isinstance(error, DatabaseBusy):
        return str(error)
    if isinstance(
        error,
        PersistenceInterfaceError
        | PersistenceOperationalError
        | InterfaceError
        | OperationalError
        | PoolTimeout,
    ):
        # The library already retried ten times: the server went away, restarted
        # or keeps terminating billrun's sessions. Every save is one transaction,
        # so what committed is whole and a run resumes from its last checkpoint.
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        return (
            f"lost the connection to PostgreSQL ({reason}). What was committed stays "
            "committed and nothing was half-written; it is safe to re-run (a bill run "
            "resumes where it stopped)."
        )
    return None


def _fault(message: str) -> None:
    from rich.markup import escape

    from entrypoints import output

    output.errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(DATABASE_FAULT)
