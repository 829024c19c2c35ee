"""`billrun invoice ...`: find, read and review invoices."""

from __future__ import annotations

from contextlib import closing
from itertools import islice
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from application.invoicing.credit_notes import credit_invoice
from application.invoicing.review import STATUSES, InvoiceFilter, ReviewOutcome, review
from domain.invoicing.credit_notes import CreditTerms
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import format_credit_note_number, format_invoice_number
from domain.invoicing.review import ReviewAction
from entrypoints import output
from entrypoints.common import (
    AsOfOption,
    JsonFlag,
    VersionOption,
    optional_decimal,
    parse_instant,
    refusals,
    runtime,
)
from entrypoints.presenters import (
    document_of,
    payment_cell,
    payment_line,
    payment_statuses,
    resolve_invoice_id,
)
from entrypoints.refusals import UsageError
from entrypoints.representations_invoices import (
    credit_json,
    invoice_row_json,
    invoice_show_json,
    review_json,
)

invoice_app = typer.Typer(help="Find, read and review invoices.", no_args_is_help=True)


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
    """List invoices with their lines, in invoice-number order, with their due dates
    and payment status today (paid, partially_paid, unpaid, overdue, withdrawn)."""
    with runtime() as rt:
        view = rt.read_side.fresh_invoices()
        today = rt.billing.clock().date()
        receivables = rt.read_side.fresh_receivables()
        if json_out:
            rows = view.search(run_id=run, account_id=account, status=status)
            paid = payment_statuses(receivables, rows, lambda row: row.id)
            output.print_json_array(invoice_row_json(row, item, today) for row, item in paid)
            return
        # The table shows `limit` rows: only those are read with their lines and
        # payment statuses, the rest counted (all 4,900 were read, for 50 shown).
        found = view.search(run, account, status, batch_size=max(limit, 1))
        with closing(found):
            first = list(islice(found, max(limit, 0)))
        hidden = view.count(run, account, status) - len(first)
        paid = payment_statuses(receivables, first, lambda row: row.id)
        table = output.compact_table("Invoices")
        for column in ("number", "account", "run"):
            table.add_column(column, no_wrap=True)
        for column in ("status", "review"):
            table.add_column(column, overflow="fold")
        for column in ("lines", "subtotal", "tax", "total"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)  # the currency, read with the amounts
        table.add_column("due\npayment", no_wrap=True)  # the due date over the payment status
        for row, item in paid:
            table.add_row(
                row.display_number, row.account, row.run_id, row.status,
                row.review_status or "-", str(len(row.lines)), str(row.subtotal),
                str(row.tax), str(row.total), row.currency,
                payment_cell(item, today),
            )  # fmt: skip
    # Too narrow for all: the line count, the status (closed, for all but a draft
    # run's), the amounts before tax, then the run go first.
    output.print_table(table, droppable=("lines", "status", "tax", "subtotal", "run", "review"))
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
        posted, today = document_of(rt, found.id), rt.billing.clock().date()
    if json_out:
        output.print_json(invoice_show_json(found, posted, today))
        return
    output.console.print(invoice_table(found))
    if found.number is not None:
        output.console.print(payment_line(posted, today))


def invoice_table(invoice: Invoice) -> Group:
    """The invoice's lines (kind, category, tax rate and tax each) and its totals.

    Money and numbers never wrap or shorten; on a narrow terminal the description
    wraps instead. Under each description, in grey, the line's source (provenance).
    """
    kind = "Credit note" if invoice.is_credit_note else "Invoice"
    title = (
        f"{kind} {invoice.display_number or '(open)'}: {invoice.account_id}, run {invoice.run_id}"
    )
    table = output.compact_table(title)
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
            f"{line.kind}\n{line.category}", output.number(line.quantity),
            output.number(line.unit_amount), output.number(line.amount),
            output.number(line.tax_rate), output.number(line.tax),
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
    parts: list[Table | Text] = [table, totals, review_line, *credit_lines(invoice)]
    if invoice.verdicts:
        verdicts = output.compact_table("Review rules (when the invoice closed)")
        for column in ("rule", "verdict", "reason"):
            verdicts.add_column(column, overflow="fold")
        for verdict in invoice.verdicts:
            verdicts.add_row(verdict.rule, verdict.action.value, verdict.reason)
        parts.append(verdicts)
    return Group(*parts)


def credit_lines(invoice: Invoice) -> list[Text]:
    """What a credit note corrects and why; the credit notes correcting an invoice."""
    if invoice.is_credit_note:
        number = invoice.corrects_number
        corrected = str(invoice.corrects) if number is None else format_invoice_number(number)
        return [
            Text.assemble(("corrects: ", "bold"), corrected),
            Text.assemble(("reason: ", "bold"), invoice.credit_reason or ""),
        ]
    return [
        Text.assemble(
            ("credited: ", "bold"),
            f"{format_credit_note_number(c.credit_note_number)} {invoice.currency} {c.total} "
            f"({c.reason})",
        )
        for c in invoice.credits.values()
    ]


# Review -------------------------------------------------------------------------

InvoicesArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="ID",
        help="Invoice ids (uuid) or numbers (42, INV-00000042, or CN-00000003).",
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


for _action in ReviewAction:
    _review_command(_action)


# Credit notes -------------------------------------------------------------------


@invoice_app.command("credit")
@refusals
def invoice_credit(
    invoice: Annotated[
        str,
        typer.Argument(help="The invoice to credit: id (uuid) or number (42 or INV-00000042)."),
    ],
    full: Annotated[
        bool, typer.Option("--full", help="Credit the whole invoice: each line negated.")
    ] = False,
    amount: Annotated[
        str | None,
        typer.Option("--amount", help="Credit this net amount (tax excluded), e.g. 50.00."),
    ] = None,
    tax_rate: Annotated[
        str | None,
        typer.Option(
            "--tax-rate",
            help="With --amount: the invoice's tax rate the credit is at, in percent "
            "(needed when the invoice has several).",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required): printed on the credit note.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Names this credit among the invoice's: the same --id again issues nothing "
            "new. Default: derived from the amount, rate and reason, so the same command "
            "run twice issues one credit note (give --id to issue two equal ones).",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Correct an issued (approved or delivered) invoice with a credit note: a document
    of its own (CN-...), numbered, posted to the account's receivables, then rendered
    and delivered like an invoice. A draft is cancelled instead."""
    if full == (amount is not None):
        raise UsageError("say what to credit: --full, or --amount (one of them)")
    if tax_rate is not None and amount is None:
        raise UsageError("--tax-rate goes with --amount (a full credit keeps each line's rate)")
    if reason is None or not reason.strip():
        raise UsageError("--reason is required: it is printed on the credit note")
    terms = CreditTerms(
        reason=reason,
        amount=optional_decimal("--amount", amount),
        tax_rate=optional_decimal("--tax-rate", tax_rate),
    )
    with runtime() as rt:
        outcome = credit_invoice(rt.billing, resolve_invoice_id(rt, invoice), terms, key)
    if json_out:
        output.print_json(credit_json(outcome))
        return
    note, corrected = outcome.credit_note, outcome.invoice
    currency = note.currency
    if outcome.created:
        said = f"credit note {note.name} issued for invoice {corrected.name}"
    else:
        said = f"credit note {note.name} was already issued for invoice {corrected.name}"
    output.console.print(
        f"{said} ({corrected.account_id}): {currency} {outcome.amount} credited, "
        f"{len(note.lines)} line(s); {currency} {corrected.creditable_total} of "
        f"{corrected.total} remains creditable" + ("" if outcome.created else "; nothing written"),
        highlight=False,
        soft_wrap=True,
    )
    if outcome.receivables is not None:
        balance = outcome.receivables.balance
        state = " (in credit)" if balance < 0 else ""
        output.console.print(
            f"account {corrected.account_id} balance: {currency} {balance}{state}", highlight=False
        )
