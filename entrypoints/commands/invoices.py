"""`billrun invoice ...`: find and read invoices."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

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
        table = Table(title="Invoices")
        for column in ("number", "account", "run", "status", "lines", "total"):
            table.add_column(column, justify="right" if column in ("lines", "total") else "left")
        shown = hidden = 0
        for row in rows:
            if shown >= limit:
                hidden += 1
                continue
            shown += 1
            table.add_row(
                row.display_number, row.account, row.run_id, row.status,
                str(len(row.lines)), output.money(row.total, row.currency),
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
    title = f"Invoice {found.display_number or '(open)'}: {found.account_id}, run {found.run_id}"
    table = Table(title=title)
    for column in ("service period", "description", "source", "qty", "unit", "amount"):
        table.add_column(column, justify="right" if column in ("qty", "unit", "amount") else "left")
    for line in found.lines:
        table.add_row(
            f"{line.service_period_start} .. {line.service_period_end}", line.description,
            line.source, str(line.quantity), str(line.unit_amount), str(line.amount),
        )  # fmt: skip
    table.add_section()
    table.add_row("", "subtotal", "", "", "", str(found.subtotal))
    table.add_row("", "tax", "", "", "", str(found.tax))
    table.add_row("", f"total {found.currency}", "", "", "", str(found.total))
    output.console.print(table)


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
