"""`billrun import` and `billrun schema`: getting data in, and its format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from application.billing.import_document import json_schema, parse_import
from application.billing.importing import import_accounts
from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime
from entrypoints.refusals import UsageError

schema_app = typer.Typer(help="Print the JSON Schema of billrun's input files.")


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
        summary = import_accounts(rt.billing, document, str(file))
    if json_out:
        output.print_json(summary.__dict__)
        return
    output.console.print(
        f"{file}: {summary.accounts_opened} accounts opened, {summary.accounts_changed} changed, "
        f"{summary.accounts_unchanged} unchanged; {summary.bill_groups_added} bill groups "
        f"added, {summary.bill_groups_changed} changed; {summary.packages_added} packages added, "
        f"{summary.charges_added} charges added, {summary.usage_recorded} usage records "
        f"recorded, {summary.contracts_agreed} contracts agreed ({summary.events} events)"
    )


@schema_app.command("import")
def schema_import() -> None:
    """Print the JSON Schema of the import file."""
    output.print_json(json_schema())


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
        run_demo(rt, accounts)
