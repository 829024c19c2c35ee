"""`billrun invoice ...`: find, read and review invoices."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import typer
from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from application.errors import InvoiceNotFound
from application.review import STATUSES, InvoiceFilter, ReviewOutcome, review
from domain.invoice import Invoice, ReviewAction
from entrypoints import output
from entrypoints.common import (
    AsOfOption,
    JsonFlag,
    UsageError,
    VersionOption,
    parse_instant,
    refusals,
    runtime,
)
from entrypoints.runtime import Runtime

invoice_app = typer.Typer(help="Find, read and review invoices.", no_args_is_help=True)


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
        str | None,
        typer.Option(
            help="Only invoices in this status: open, closed, or a review status (draft, "
            "approved, quarantined, rejected, cancelled)."
        ),
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
        for column in ("account", "run", "status", "review"):
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
                row.review_status or "-", str(len(row.lines)), str(row.subtotal),
                str(row.tax), str(row.total), row.currency,
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
    if invoice.review_status is None:
        return Group(table, totals)
    review_line = Text.assemble(("review: ", "bold"), invoice.review_status.value)
    if invoice.review_reason:
        by = f"rule {invoice.review_rule}" if invoice.review_rule else "operator"
        review_line.append(f" ({by}: {invoice.review_reason})")
    parts: list[Table | Text] = [table, totals, review_line]
    if invoice.verdicts:
        verdicts = compact_table("Review rules (when the invoice closed)")
        for column in ("rule", "verdict", "reason"):
            verdicts.add_column(column, overflow="fold")
        for verdict in invoice.verdicts:
            verdicts.add_row(verdict.rule, verdict.action.value, verdict.reason)
        parts.append(verdicts)
    return Group(*parts)


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
        "review_status": invoice.review_status.value if invoice.review_status else None,
        "review_reason": invoice.review_reason,
        "review_rule": invoice.review_rule,
        "verdicts": [verdict.model_dump(mode="json") for verdict in invoice.verdicts],
        "version": invoice.version,
        "lines": [line.model_dump(mode="json") for line in invoice.lines],
    }


# Review -------------------------------------------------------------------------

InvoicesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="ID",
        help="Invoice ids (uuid) or numbers (42 or INV-00000042).",
        show_default=False,
    ),
]
RunFilter = Annotated[
    str | None, typer.Option("--run", help="Every invoice of this run (opened or closed by it).")
]
StatusFilter = Annotated[
    str | None,
    typer.Option(
        "--status",
        help="With --run: only invoices in this status (" + ", ".join(STATUSES) + ").",
    ),
]
AccountFilter = Annotated[
    str | None, typer.Option("--account", help="With --run: only this account's invoices.")
]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason",
        help="Why, recorded on each invoice changed (required to quarantine, reject, cancel).",
    ),
]

_REVIEW_HELP = {
    ReviewAction.APPROVE: "Approve draft invoices: final, and delivered (runs that require "
    "approval deliver nothing until then).",
    ReviewAction.QUARANTINE: "Quarantine draft invoices (--reason): held from delivery "
    "until released (unquarantine), rejected or cancelled.",
    ReviewAction.UNQUARANTINE: "Release quarantined invoices back to draft.",
    ReviewAction.REJECT: "Reject draft or quarantined invoices (--reason): never issued.",
    ReviewAction.CANCEL: "Cancel draft or quarantined invoices (--reason): never issued.",
}


def _review_command(action: ReviewAction) -> None:
    def command(
        invoices: InvoicesArgument = None,
        run: RunFilter = None,
        status: StatusFilter = None,
        account: AccountFilter = None,
        reason: ReasonOption = None,
        json_out: JsonFlag = False,
    ) -> None:
        review_invoices(action, invoices or [], run, status, account, reason, json_out)

    command.__doc__ = (
        f"{_REVIEW_HELP[action]}\n\nBy id or number (ID...), or by filter (--run R "
        "[--status S] [--account A]). Prints what changed, what was already so, and "
        "each refusal with its reason; exits 1 when any invoice was refused."
    )
    invoice_app.command(action.value)(refusals(command))


def review_invoices(
    action: ReviewAction,
    invoices: list[str],
    run: str | None,
    status: str | None,
    account: str | None,
    reason: str | None,
    json_out: bool,
) -> None:
    if run is None and (status is not None or account is not None):
        raise UsageError("--status and --account narrow --run: give --run too")
    if invoices and run is not None:
        raise UsageError("name invoices by id or select them with --run, not both")
    with runtime() as rt:
        ids = [resolve_invoice_id(rt, text) for text in invoices]
        selection = None if run is None else InvoiceFilter(run, status, account)

        def find(chosen: InvoiceFilter) -> list[UUID]:
            rows = rt.read_side.fresh_invoices().search(
                run_id=chosen.run_id, account_id=chosen.account_id, status=chosen.status
            )
            return [row.id for row in rows]

        outcome = review(rt.billing, action, ids, selection, find, reason)
    if json_out:
        output.print_json(review_json(outcome))
    else:
        print_review(outcome)
    if outcome.refused:
        raise typer.Exit(1)


def print_review(outcome: ReviewOutcome) -> None:
    changed, unchanged, refused = outcome.changed, outcome.unchanged, outcome.refused
    summary = f"{len(changed)} changed, {len(refused)} refused"
    if unchanged:
        summary += f" ({len(unchanged)} already {outcome.action.past})"
    output.console.print(f"{outcome.action.value}: {summary}", highlight=False)
    for result in refused:
        output.console.print(
            Text.assemble((f"refused {result.invoice}: ", "red"), result.reason or ""),
            soft_wrap=True,
        )


def review_json(outcome: ReviewOutcome) -> dict[str, Any]:
    return {
        "action": outcome.action.value,
        "changed": len(outcome.changed),
        "unchanged": len(outcome.unchanged),
        "refused": len(outcome.refused),
        "invoices": [
            {
                "id": str(result.invoice_id),
                "invoice": result.invoice,
                "result": result.kind.value,
                "review_status": result.review_status,
                "reason": result.reason,
            }
            for result in outcome.results
        ],
    }


for _action in ReviewAction:
    _review_command(_action)
