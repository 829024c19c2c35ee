"""`billrun charge ...`: one-off charges and credits on accounts."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from application.billing.transactions import ChargeInput, add_charges
from application.runs.cancel import WrittenOff
from domain.billing.account import Account
from domain.billing.lines import DEFAULT_CHARGE_CATEGORY
from domain.billing.terms import ChargeTerms
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
from entrypoints.representations import charge_json

charge_app = typer.Typer(
    help="Add one-off charges (a negative amount: a credit) to accounts and list them.\n\n"
    "A charge is billed once, by the first run whose period ends on or after its date. "
    "See docs/usage-and-charges.md.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@charge_app.command("add")
@refusals
def charge_add(
    account: AccountArgument,
    charge_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="Your unique id for this charge (per account); "
            "adding the same id again with the same data records nothing.",
            show_default=False,
        ),
    ],
    description: Annotated[str, typer.Option(help="Text of the invoice line.", show_default=False)],
    amount: Annotated[
        str,
        typer.Option(
            help="Exact decimal in the account's currency, at most its minor unit "
            "(12.50); negative for a credit (-5.00).",
            show_default=False,
        ),
    ],
    charge_date: Annotated[
        str,
        typer.Option(
            "--date",
            help="YYYY-MM-DD; billed by the first run whose period ends on or after it.",
            show_default=False,
        ),
    ],
    category: Annotated[
        str, typer.Option(help="Category; runs can be limited to some categories.")
    ] = DEFAULT_CHARGE_CATEGORY,
    tax_rate: Annotated[
        str | None,
        typer.Option(
            "--tax-rate",
            help="Percent, 0 to 100, e.g. 20 (default: the account's rate).",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add a one-off charge, or with a negative amount a credit, to an account.

    Example: [bold]billrun charge add ACME-001 --id setup-1 --description "Setup fee"
    --amount 250.00 --date 2026-01-15[/bold]

    A credit: [bold]billrun charge add ACME-001 --id goodwill-1 --description Goodwill
    --amount -20.00 --date 2026-01-20[/bold]

    The same --id again with the same data records nothing (safe to retry); with
    other data it is refused.
    """
    if not description.strip():
        raise UsageError("--description: required, but empty")
    if not category.strip():
        raise UsageError("--category: required, but empty")
    try:
        terms = ChargeTerms(
            charge_id=charge_id,
            description=description,
            amount=decimal_option("--amount", amount),
            charge_date=date_option("--date", charge_date),
            category=category.strip(),
            tax_rate=None if tax_rate is None else decimal_option("--tax-rate", tax_rate),
        )
    except ValidationError as error:  # pragma: no cover - the options are parsed above
        raise UsageError(str(error)) from None
    with runtime() as rt:
        summary = add_charges(rt.billing, [ChargeInput("", account, terms)], "charge add")
        stored = rt.billing.get_account(account)
    charge = stored.charges[charge_id]
    if json_out:
        output.print_json(
            {
                "account": account,
                "recorded": summary.recorded == 1,
                "charge": charge_json(charge, stored.currency),
            }
        )
        return
    if summary.recorded:
        kind = "credit" if terms.amount < 0 else "charge"
        output.console.print(
            f"{kind} {charge_id} added to {account}: {output.money(terms.amount, stored.currency)}"
            f" ({terms.description}, {terms.charge_date}, category {terms.category})"
        )
    else:
        output.console.print(
            f"charge {charge_id} was already on {account} with the same data; nothing written."
        )


def charge_rows(stored: Account, written: WrittenOff) -> list[dict[str, Any]]:
    charges = sorted(
        stored.charges.values(), key=lambda c: (c.terms.charge_date, c.terms.charge_id)
    )
    return [
        charge_json(c, stored.currency, written.charges.get(c.terms.charge_id)) for c in charges
    ]


def charge_cells(stored: Account, row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["charge_id"], row["charge_date"], row["description"], row["category"],
        row["amount"], row["tax_rate"] or f"{stored.tax_rate} (account)", billed_text(row),
    )  # fmt: skip


CHARGES = AccountListing(
    title="Charges",
    rows=charge_rows,
    columns=("id", "date", "description", "category", "amount", "tax %", "billed"),
    cells=charge_cells,
    numeric=("amount", "tax %"),
    wrapped=("description", "tax %"),
    droppable=("category",),
)
add_list_command(
    charge_app,
    CHARGES,
    """List an account's one-off charges and credits, by date, and whether each is billed.

    Example: [bold]billrun charge list ACME-001 --unbilled --json[/bold]
    """,
)
