"""`billrun account ...`: read accounts and their packages."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from application.invoicers import assign_invoicer
from domain.account import Account
from domain.ids import account_uuid
from entrypoints import output
from entrypoints.common import (
    AsOfOption,
    JsonFlag,
    VersionOption,
    parse_instant,
    refusals,
    runtime,
)

account_app = typer.Typer(help="Read accounts and their packages.", no_args_is_help=True)


@account_app.command("invoicer")
@refusals
def account_invoicer(
    account_id: Annotated[str, typer.Argument(help="The account whose lines move.")],
    invoicer: Annotated[
        str | None, typer.Argument(help="The account whose invoices carry them.")
    ] = None,
    none: Annotated[
        bool, typer.Option("--none", help="Bill the account onto its own invoices again.")
    ] = False,
) -> None:
    """Bill an account onto another account's invoices (one invoice for the family).

    From the next bill run on, the account's lines go onto its invoicer's invoice,
    each line naming the account it is for, converted to the invoicer's currency
    when they differ. One level: an invoicer is not itself billed onto another.
    A run selects families by their invoicer (its bill group, its id).
    """
    if (invoicer is None) == (not none):
        raise typer.BadParameter("name the INVOICER, or pass --none (not both)")
    with runtime() as rt:
        changed = assign_invoicer(rt.billing, account_id, invoicer)
    target = f"onto {invoicer}'s invoices" if invoicer else "onto its own invoices"
    output.console.print(
        f"account {account_id} {'is now' if changed else 'was already'} billed {target}"
    )


@account_app.command("show")
@refusals
def account_show(
    account_id: str,
    as_of: AsOfOption = None,
    version: VersionOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Show an account and its packages (with next bill dates), rebuilt from its events.

    With --as-of or --version: the account as it was then.
    """
    instant = parse_instant(as_of)
    with runtime() as rt:
        account = rt.billing.get_account(account_id, version=version, as_of=instant)
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
