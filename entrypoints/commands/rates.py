"""`billrun rates ...`: exchange rates and the owner's base currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

import typer

from application.billing.exchange_rates import set_base_currency, set_rate
from entrypoints import output
from entrypoints.common import JsonFlag, date_parameter, decimal_option, refusals, runtime
from entrypoints.representations import rate_rows, rates_json

rates_app = typer.Typer(
    help="Exchange rates (fixed per bill run when it starts) and the base currency.",
    no_args_is_help=True,
)


def _rate(text: str) -> Decimal:
    rate = decimal_option("RATE", text)
    if rate <= 0:
        raise typer.BadParameter(f"must be a positive decimal, not {text!r}")
    return rate


@rates_app.command("set")
@refusals
def rates_set(
    base: Annotated[str, typer.Argument(help="ISO 4217 code of the currency sold, e.g. EUR.")],
    quote: Annotated[str, typer.Argument(help="ISO 4217 code of the currency bought, e.g. USD.")],
    rate: Annotated[str, typer.Argument(help="How many QUOTE one BASE buys, e.g. 1.0842.")],
    effective: Annotated[
        date,
        typer.Option(
            "--date", parser=date_parameter, metavar="YYYY-MM-DD", help="In effect from this date."
        ),
    ],
    json_out: JsonFlag = False,
) -> None:
    """Record an exchange rate: 1 BASE = RATE QUOTE from --date on.

    A bill run converts with the rates in effect on its posting date, taken when
    it starts and recorded on the run, so later rates never change a run. The
    inverse pair is derived when only one direction is recorded.

    Example: billrun rates set EUR USD 1.0842 --date 2026-01-01
    """
    with runtime() as rt:
        recorded = set_rate(rt.billing, base, quote, _rate(rate), effective)
    if json_out:
        output.print_json(
            {
                "pair": f"{base}/{quote}",
                "rate": rate,
                "date": effective,
                "recorded": recorded,
            }
        )
        return
    verb = "recorded" if recorded else "was already recorded"
    output.console.print(f"1 {base} = {rate} {quote} from {effective} {verb}")


@rates_app.command("base")
@refusals
def rates_base(
    currency: Annotated[str, typer.Argument(help="ISO 4217 code, e.g. EUR.")],
    json_out: JsonFlag = False,
) -> None:
    """Set the owner's base currency: every invoice line also carries its amount in it
    (for reporting), so runs then need a rate from each account currency to it."""
    with runtime() as rt:
        changed = set_base_currency(rt.billing, currency)
    if json_out:
        output.print_json({"base_currency": currency, "changed": changed})
        return
    output.console.print(f"base currency {'set to' if changed else 'is already'} {currency}")


@rates_app.command("list")
@refusals
def rates_list(
    on: Annotated[
        date | None,
        typer.Option(
            parser=date_parameter,
            metavar="YYYY-MM-DD",
            help="Only the rates in effect on this date.",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """List recorded exchange rates (all, or those in effect --on a date)."""
    with runtime() as rt:
        book = rt.billing.get_rate_book()
    rows = rate_rows(book, on)
    if json_out:
        output.print_json(rates_json(book, on))
        return
    table = output.compact_table(
        f"Exchange rates (base currency {book.base_currency or 'not set'})"
    )
    for column in ("pair", "effective from", "rate"):
        table.add_column(column, justify="right" if column == "rate" else "left", no_wrap=True)
    for pair, effective, rate in rows:
        table.add_row(
            pair, str(effective) if effective else f"in effect on {on:%Y-%m-%d}", str(rate)
        )
    output.print_table(table)
