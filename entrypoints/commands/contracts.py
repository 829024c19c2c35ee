"""`billrun contract ...`: contract terms on accounts and packages (docs/contracts.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from pydantic import ValidationError

from application.billing.transactions import (
    ContractInput,
    TerminationInput,
    agree_contracts,
    terminate_contracts,
)
from domain.billing.account import Account
from domain.billing.contracts import DEFAULT_CONTRACT_CATEGORY, ContractTerms, term_end
from entrypoints import output
from entrypoints.common import (
    AccountArgument,
    DateOption,
    JsonFlag,
    date_parameter,
    optional_decimal,
    refusals,
    runtime,
)
from entrypoints.refusals import UsageError
from entrypoints.representations import contract_json

contract_app = typer.Typer(
    help="Contracts on accounts or packages: a minimum term with an early-termination "
    "fee, a minimum spend over the term, or both.\n\n"
    "A bill run's contract step (on unless scheduled with --no-contracts) bills each "
    "penalty once, in the first run whose period ends on or after it is due. "
    "See docs/contracts.md.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@contract_app.command("add")
@refusals
def contract_add(
    account: AccountArgument,
    contract_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="Your unique id for this contract (per account); adding the same id "
            "again with the same terms records nothing.",
            show_default=False,
        ),
    ],
    start: DateOption,
    term_months: Annotated[
        int,
        typer.Option(
            "--term-months", min=1, help="The minimum term in months.", show_default=False
        ),
    ],
    package: Annotated[
        str | None,
        typer.Option(
            help="The account's package the contract is on; without it the contract "
            "is on the whole account (its spend counts every line)."
        ),
    ] = None,
    early_termination_fee: Annotated[
        str | None,
        typer.Option(
            "--early-termination-fee",
            help="Billed once if the contract is terminated before its term ends "
            "(account currency, e.g. 150.00).",
        ),
    ] = None,
    minimum_spend: Annotated[
        str | None,
        typer.Option(
            "--minimum-spend",
            help="Committed over the whole term; the shortfall is billed once after "
            "the term (or the contract) ends.",
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(help="Text of the penalty lines [default: Contract <id>]."),
    ] = None,
    category: Annotated[
        str, typer.Option(help="Category of the penalty lines.")
    ] = DEFAULT_CONTRACT_CATEGORY,
    tax_rate: Annotated[
        str | None,
        typer.Option("--tax-rate", help="Percent, 0 to 100 (default: the account's rate)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Agree a contract on an account or on one of its packages.

    Example: [bold]billrun contract add ACME-001 --id C-2026 --package office
    --start 2026-01-01 --term-months 12 --early-termination-fee 150.00
    --minimum-spend 1200.00[/bold]

    The same --id again with the same terms records nothing (safe to retry); with
    other terms it is refused.
    """
    if not category.strip():
        raise UsageError("--category: required, but empty")
    try:
        terms = ContractTerms(
            contract_id=contract_id,
            package_id=package,
            start_date=start,
            term_months=term_months,
            early_termination_fee=optional_decimal(
                "--early-termination-fee", early_termination_fee
            ),
            minimum_spend=optional_decimal("--minimum-spend", minimum_spend),
            description=description or f"Contract {contract_id}",
            category=category.strip(),
            tax_rate=optional_decimal("--tax-rate", tax_rate),
        )
    except ValidationError as error:  # pragma: no cover - the options are parsed above
        raise UsageError(str(error)) from None
    with runtime() as rt:
        summary = agree_contracts(rt.billing, [ContractInput("", account, terms)], "contract add")
        stored = rt.billing.get_account(account)
    if json_out:
        print_contract_json(account, stored, contract_id, summary.recorded == 1)
        return
    if summary.recorded:
        on = f"package {package}" if package else "the whole account"
        output.console.print(
            f"contract {contract_id} agreed on {account} ({on}): "
            f"{terms.start_date} to {term_end(terms)}"
        )
    else:
        output.console.print(
            f"contract {contract_id} was already on {account} with the same terms; nothing written."
        )


@contract_app.command("terminate")
@refusals
def contract_terminate(
    account: AccountArgument,
    contract_id: Annotated[str, typer.Argument(help="The contract's id.")],
    on: Annotated[
        date,
        typer.Option(
            "--on",
            parser=date_parameter,
            metavar="YYYY-MM-DD",
            help="The contract's last day (YYYY-MM-DD).",
            show_default=False,
        ),
    ],
    json_out: JsonFlag = False,
) -> None:
    """Terminate a contract: its last day is --on.

    Before the term's end, the early-termination fee (and any minimum-spend
    shortfall) is billed by the first run whose period ends on or after --on.
    The package is not changed: end it separately if the service ends too.

    Example: [bold]billrun contract terminate ACME-001 C-2026 --on 2026-04-15[/bold]
    """
    day = on
    with runtime() as rt:
        summary = terminate_contracts(
            rt.billing,
            [TerminationInput("", account, contract_id, day)],
            "contract terminate",
        )
        stored = rt.billing.get_account(account)
    if json_out:
        print_contract_json(account, stored, contract_id, summary.recorded == 1)
        return
    if summary.recorded:
        output.console.print(f"contract {contract_id} of {account} terminated on {day}")
    else:
        output.console.print(
            f"contract {contract_id} of {account} was already terminated on {day}; nothing written."
        )


@contract_app.command("list")
@refusals
def contract_list(
    account: AccountArgument,
    json_out: JsonFlag = False,
) -> None:
    """List an account's contracts: term, spend so far within it, penalties billed.

    Example: [bold]billrun contract list ACME-001 --json[/bold]
    """
    with runtime() as rt:
        stored = rt.billing.get_account(account)
    rows = [contract_json(stored, c) for c in stored.contracts.values()]
    if json_out:
        output.print_json(rows)
        return
    table = output.compact_table(f"Contracts of {stored.account_id} ({stored.currency})")
    columns = ("id", "on", "term", "terminated", "fee", "minimum", "spend", "penalties")
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in ("fee", "minimum", "spend") else "left",
            no_wrap=column != "penalties",
        )
    for row in rows:
        billed = ", ".join(
            f"{p['reason'].replace('_', ' ')} {p['amount']} (run {p['run_id']})"
            for p in row["penalties"]
        )
        table.add_row(
            row["contract_id"], row["package_id"] or "account",
            f"{row['start_date']}..\n{row['term_end']}", row["terminated_on"] or "-",
            row["early_termination_fee"] or "-", row["minimum_spend"] or "-",
            row["spend"], billed or "-",
        )  # fmt: skip
    output.print_table(table, droppable=("on", "terminated"))


def print_contract_json(account: str, stored: Account, contract_id: str, recorded: bool) -> None:
    """The --json answer of `contract add` and `contract terminate`."""
    output.print_json(
        {
            "account": account,
            "recorded": recorded,
            "contract": contract_json(stored, stored.contracts[contract_id]),
        }
    )
