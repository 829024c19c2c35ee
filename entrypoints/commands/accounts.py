"""`billrun account ...`: read accounts and their packages."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from application.billing.importing import change_buyer
from application.billing.invoicers import assign_invoicer
from application.receivables.payments import payment_terms, set_autopay, set_payment_terms
from entrypoints import output
from entrypoints.common import (
    AccountArgument,
    AsOfOption,
    JsonFlag,
    VersionOption,
    parse_instant,
    refusals,
    runtime,
)
from entrypoints.presenters import show_balance
from entrypoints.representations import account_json

account_app = typer.Typer(
    help="Read accounts, their packages and balances; set payment terms, auto-pay and "
    "buyer details.",
    no_args_is_help=True,
)


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
    json_out: JsonFlag = False,
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
    if json_out:
        output.print_json({"account": account_id, "invoicer": invoicer, "changed": changed > 0})
        return
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
    table = output.compact_table("Packages")
    for column in (
        "package",
        "description",
        "amount",
        "frequency",
        "timing",
        "start",
        "end",
        "next bill",
        "owed",
    ):
        table.add_column(column, no_wrap=column != "description")
    for package in account.packages.values():
        t = package.terms
        owed = ", ".join(str(package.bill_date_of(i)) for i in package.owed) or "-"
        table.add_row(
            t.package_id, t.description, str(t.amount), t.frequency.value, t.timing.value,
            str(t.start_date), str(t.end_date or "-"), str(package.next_bill_date), owed,
        )  # fmt: skip
    # Owed dates are also listed under the table, so that column goes first.
    output.print_table(table, droppable=("owed", "timing", "end", "start"))
    stranded = account.owed()
    if stranded:
        listed = ", ".join(f"{package_id} {day}" for package_id, day in stranded)
        output.console.print(
            f"{len(stranded)} bill date(s) no run covered are owed, not billed: {listed}; "
            "a run with --catch-up bills them (`billrun run check` lists them)"
        )


# Receivables ----------------------------------------------------------------------


@account_app.command("balance")
@refusals
def account_balance(
    account_id: AccountArgument,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Age the open invoices on this day, YYYY-MM-DD (default: today).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """What an account owes: balance, credit, open invoices (due date, paid, days
    overdue, status) and their aging; its payment terms, auto-pay and suspension.

    Balance = open amounts - credit balance (negative: the account is in credit).

    Example: [bold]billrun account balance ACME-001 --as-of 2026-03-31[/bold]
    """
    show_balance(account_id, as_of, json_out)


@account_app.command("terms")
@refusals
def account_terms(
    account_id: AccountArgument,
    net: Annotated[
        int | None,
        typer.Option("--net", help="Days from issue to due date, 0 to 365.", show_default=False),
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Back to the bill group's terms (else 30 days).")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Set an account's payment terms: the due date of its next invoices is their
    issue date plus this many days. Invoices already issued keep their due dates.

    Example: [bold]billrun account terms ACME-001 --net 14[/bold]
    """
    if (net is None) == (not default):
        raise typer.BadParameter("give --net DAYS or --default (one of them)")
    with runtime() as rt:
        changed = set_payment_terms(rt.billing, account_id, net)
        terms = payment_terms(rt.billing, account_id)
    if json_out:
        output.print_json(
            {
                "account": account_id,
                "payment_terms": {"days": terms.days, "source": terms.source},
                "changed": changed,
            }
        )
        return
    state = "are now" if changed else "were already"
    output.console.print(
        f"payment terms of {account_id} {state} net {terms.days} days ({terms.source})",
        highlight=False,
    )


@account_app.command("autopay")
@refusals
def account_autopay(
    account_id: AccountArgument,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The payment method's token at the gateway (never printed in full).",
            show_default=False,
        ),
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Take the account off auto-pay.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Put an account on auto-pay (runs that collect payments charge it through the
    payment gateway), or take it off.

    Example: [bold]billrun account autopay ACME-001 --token tok_approved_visa[/bold]
    """
    if (token is None) == (not off):
        raise typer.BadParameter("give --token TOKEN or --off (one of them)")
    with runtime() as rt:
        changed = set_autopay(rt.billing, account_id, token)
    if json_out:  # the token is a secret: never echoed
        output.print_json({"account": account_id, "autopay": token is not None, "changed": changed})
        return
    state = "on" if token is not None else "off"
    output.console.print(
        f"auto-pay of {account_id} {'is now' if changed else 'was already'} {state}",
        highlight=False,
    )


def _optional(help_text: str) -> Any:
    return typer.Option(help=help_text, show_default=False)


@account_app.command("buyer")
@refusals
def account_buyer(
    account_id: Annotated[str, typer.Argument(help="Account id, e.g. ACME-001.")],
    street: Annotated[str | None, _optional("Street and number.")] = None,
    city: Annotated[str | None, _optional("City.")] = None,
    postcode: Annotated[str | None, _optional("Postcode.")] = None,
    country: Annotated[
        str | None, _optional("ISO 3166-1 alpha-2 country code, e.g. BE (e-invoices need it).")
    ] = None,
    vat_id: Annotated[str | None, _optional("The buyer's VAT id, e.g. BE0477472701.")] = None,
    endpoint: Annotated[
        str | None,
        _optional("Electronic address SCHEME:ID, a Peppol EAS scheme: 0208:0477472701."),
    ] = None,
    no_endpoint: Annotated[
        bool, typer.Option("--no-endpoint", help="Remove the electronic address.")
    ] = False,
    json_out: JsonFlag = False,
) -> None:
    """Show or set the buyer details e-invoices state: postal address, VAT id and
    electronic address (Peppol). Options left out keep their value; none: show.

    Example: [bold]billrun account buyer ACME-001 --street "Rue de la Loi 16"
    --city Brussels --postcode 1000 --country BE --endpoint 0208:0477472701[/bold]
    """
    update: dict[str, str | None] = {
        key: value
        for key, value in (("street", street), ("city", city), ("postal_code", postcode),
                           ("country_code", country), ("vat_id", vat_id))
        if value is not None
    }  # fmt: skip
    if endpoint is not None and no_endpoint:
        raise typer.BadParameter("give --endpoint or --no-endpoint, not both")
    if endpoint is not None:
        scheme, _, identifier = endpoint.partition(":")
        if not scheme or not identifier:
            raise typer.BadParameter(f"--endpoint: expected SCHEME:ID, not {endpoint!r}")
        update |= {"endpoint_scheme": scheme, "endpoint_id": identifier}
    if no_endpoint:
        update |= {"endpoint_scheme": None, "endpoint_id": None}
    with runtime() as rt:
        details, changed = change_buyer(rt.billing, account_id, update)
    if json_out:
        output.print_json({"account": account_id, **details.model_dump(), "changed": changed})
        return
    address = ", ".join(
        part
        for part in (details.street, details.postal_code, details.city, details.country_code)
        if part
    )
    endpoint_text = (
        f"{details.endpoint_scheme}:{details.endpoint_id}" if details.endpoint_id else "-"
    )
    state = "changed" if changed else "unchanged"
    output.console.print(
        f"buyer {account_id} ({state}): address {address or '-'}; VAT id "
        f"{details.vat_id or '-'}; electronic address {endpoint_text}",
        highlight=False,
        soft_wrap=True,
    )
