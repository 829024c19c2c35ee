"""`billrun invoice ...`: find and read invoices."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from application.errors import InvoiceNotFound
from domain.invoice import Invoice
from entrypoints import output
from entrypoints.common import (
    AsOfOption,
    JsonFlag,
    VersionOption,
    parse_instant,
    refusals,
    runtime,
)
from entrypoints.runtime import Runtime

invoice_app = typer.Typer(help="Find and read invoices.", no_args_is_help=True)


def compact_table(title: str) -> Table:
    """A table with narrow margins, so that an 80-column terminal (or a pipe) shows
    every column of an invoice without shortening a number."""
    return Table(
        title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True
    )


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
        table = compact_table("Invoices")
        table.add_column("number", no_wrap=True)
        for column in ("account", "run", "status"):
            table.add_column(column, overflow="fold")
        for column in ("lines", "subtotal", "tax", "total"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)  # the currency, read with the amounts
        shown = hidden = 0
        for row in rows:
            if shown >= limit:
                hidden += 1
                continue
            shown += 1
            table.add_row(
                row.display_number, row.account, row.run_id, row.status,
                str(len(row.lines)), str(row.subtotal), str(row.tax), str(row.total),
                row.currency,
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
    as_of: AsOfOption = None,
    version: VersionOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Show one invoice, rebuilt from its events (now, --as-of an instant, or at --version)."""
    instant = parse_instant(as_of)
    with runtime() as rt:
        found = rt.billing.get_invoice(
            resolve_invoice_id(rt, invoice), version=version, as_of=instant
        )
    if json_out:
        output.print_json(invoice_json(found))
        return
    output.console.print(invoice_table(found))


def invoice_table(invoice: Invoice) -> Group:
    """The invoice's lines (kind, category, tax rate and tax each) and its totals.

    Money and numbers never wrap or shorten; on a narrow terminal the description
    wraps instead. Under each description, in grey, the line's source (provenance).
    """
    title = (
        f"Invoice {invoice.display_number or '(open)'}: {invoice.account_id}, run {invoice.run_id}"
    )
    table = compact_table(title)
    table.add_column("service\nperiod", no_wrap=True)
    table.add_column("description", overflow="fold", min_width=12, ratio=1)
    table.add_column("kind\ncategory", overflow="fold", min_width=9)
    for column in ("qty", "unit", "amount", "tax %", "tax"):
        table.add_column(column, justify="right", no_wrap=True)
    for line in invoice.lines:
        start, end = line.service_period_start, line.service_period_end
        table.add_row(
            str(start) if start == end else f"{start}\n{end}",
            Text.assemble(line.description, "\n", (line.source, "dim")),
            f"{line.kind}\n{line.category}", str(line.quantity), str(line.unit_amount),
            str(line.amount), str(line.tax_rate), str(line.tax),
        )  # fmt: skip
    totals = Table(show_header=False, box=None)
    totals.add_column(style="bold")
    totals.add_column(justify="right")
    totals.add_row("subtotal", str(invoice.subtotal))
    totals.add_row("tax", str(invoice.tax))
    totals.add_row(f"total {invoice.currency}", str(invoice.total))
    return Group(table, totals)


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
