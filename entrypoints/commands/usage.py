"""`billrun usage ...`: record usage on accounts' packages, one record or a CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from application.billing.transactions import UsageInput, record_usage
from application.billing.usage_csv import parse_usage_csv
from application.runs.cancel import WrittenOff
from domain.billing.account import Account
from entrypoints import output
from entrypoints.account_listings import AccountListing, add_list_command
from entrypoints.common import (
    AccountArgument,
    JsonFlag,
    date_option,
    decimal_option,
    refusals,
    runtime,
)
from entrypoints.presenters import billed_text
from entrypoints.refusals import UsageError
from entrypoints.representations import usage_json

usage_app = typer.Typer(
    help="Record usage of accounts' packages (one record, or a CSV file) and list it.\n\n"
    "Usage is priced when recorded (its own unit price, or the package's usage rate) "
    "and billed with its package: a run that bills the package also bills its "
    "unbilled usage up to the run's period end. See docs/usage-and-charges.md.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@usage_app.command("record")
@refusals
def usage_record(
    account: AccountArgument,
    package: Annotated[str, typer.Argument(help="The account's package the usage is of.")],
    quantity: Annotated[
        str, typer.Argument(help="Units used, an exact decimal with a dot: 3, 1.25.")
    ],
    usage_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="Your unique id for this record (per account); "
            "recording the same id again with the same data records nothing.",
            show_default=False,
        ),
    ],
    occurred_on: Annotated[
        str, typer.Option("--date", help="The day it was used: YYYY-MM-DD.", show_default=False)
    ],
    unit_price: Annotated[
        str | None,
        typer.Option("--unit-price", help="Price per unit (default: the package's usage rate)."),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(help="Text of the invoice line (default: the package's description)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Record one usage record on an account's package.

    Example: [bold]billrun usage record ACME-001 office 120 --id print-2026-01-05
    --date 2026-01-05 --unit-price 0.05 --description "Printing (pages)"[/bold]

    The same --id again with the same data records nothing (safe to retry); with
    other data it is refused.
    """
    record = UsageInput(
        where="",
        account_id=account,
        usage_id=usage_id,
        package_id=package,
        quantity=decimal_option("QUANTITY", quantity),
        occurred_on=date_option("--date", occurred_on),
        unit_price=None if unit_price is None else decimal_option("--unit-price", unit_price),
        description=description,
    )
    with runtime() as rt:
        summary = record_usage(rt.billing, [record], "usage record")
        stored = rt.billing.get_account(account)
    recorded = stored.usage[usage_id]
    if json_out:
        output.print_json(
            {
                "account": account,
                "recorded": summary.recorded == 1,
                "usage": usage_json(stored, recorded),
            }
        )
        return
    what = (
        f"{recorded.quantity} x {recorded.unit_price} {stored.currency} "
        f"({recorded.description}, {recorded.occurred_on})"
    )
    if summary.recorded:
        output.console.print(f"usage {usage_id} recorded on {account}, package {package}: {what}")
    else:
        output.console.print(
            f"usage {usage_id} was already recorded on {account} with the same data; "
            "nothing written."
        )


@usage_app.command("import")
@refusals
def usage_import(
    file: Annotated[Path, typer.Argument(help="A usage CSV file (see docs/usage-and-charges.md).")],
    json_out: JsonFlag = False,
) -> None:
    """Record every usage record of a CSV file, all or nothing.

    Example: [bold]billrun usage import usage-2026-01.csv[/bold]

    Header row, then one record a row. Required columns: account_id, usage_id,
    package_id, quantity, occurred_on; optional: unit_price, description. UTF-8,
    comma separated, decimals with a dot, dates YYYY-MM-DD.

    A file with any problem is refused whole, every problem listed by line and
    column, and nothing is written. Importing the same file again records
    nothing new (its records count as duplicates).
    """
    try:
        records = parse_usage_csv(file)
    except OSError as error:
        raise UsageError(f"{file}: cannot read: {error.strerror}") from None
    with runtime() as rt:
        summary = record_usage(rt.billing, records, str(file))
    if json_out:
        output.print_json(
            {
                "recorded": summary.recorded,
                "duplicates": summary.duplicates,
                "accounts": summary.accounts,
                "events": summary.events,
            }
        )
        return
    output.console.print(
        f"{file}: {summary.recorded} usage records recorded, {summary.duplicates} already "
        f"recorded (duplicates), on {summary.accounts} accounts ({summary.events} events)"
    )


def usage_rows(stored: Account, written: WrittenOff) -> list[dict[str, Any]]:
    return [
        usage_json(stored, record, written.usage.get(record.usage_id))
        for record in sorted(stored.usage.values(), key=lambda u: (u.occurred_on, u.usage_id))
    ]


def usage_cells(_: Account, row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["usage_id"], row["package_id"], row["occurred_on"], row["description"],
        row["quantity"], row["unit_price"], billed_text(row),
    )  # fmt: skip


USAGE = AccountListing(
    title="Usage",
    rows=usage_rows,
    columns=("id", "package", "date", "description", "quantity", "unit price", "billed"),
    cells=usage_cells,
    numeric=("quantity", "unit price"),
    droppable=("package",),
)
add_list_command(
    usage_app,
    USAGE,
    """List an account's usage records, by date, and whether each is billed.

    Example: [bold]billrun usage list ACME-001 --unbilled --json[/bold]
    """,
)
