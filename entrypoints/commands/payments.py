"""`billrun payment ...` and `billrun ar ...`: money received, and what is owed.

Payments go through the account's receivables (`application.receivables.payments`); what is
owed, paid and overdue is read from the receivables read model
(`projections.receivables`), caught up before each read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from application.receivables.collection import payment_gateway
from application.receivables.payments import (
    PaymentRecording,
    Reconciliation,
    reconcile_collections,
    record_payment,
)
from domain.shared.money import round_to_currency
from entrypoints import output
from entrypoints.common import (
    JsonFlag,
    date_option,
    decimal_option,
    refusals,
    runtime,
)
from entrypoints.presenters import aging_table, as_of_day
from entrypoints.representations import recording_json

payment_app = typer.Typer(
    help="Record payments received, list them, and reconcile pending collections.\n\n"
    "A payment is allocated to the account's open invoices oldest first (due date, then "
    "number); what is left becomes the account's credit balance, which pays its next "
    "invoices. See also [bold]billrun account balance[/bold] and [bold]billrun ar "
    "aging[/bold].",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
ar_app = typer.Typer(
    help="Accounts receivable across accounts: what is open and how overdue.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

AccountFilter = Annotated[str | None, typer.Option("--account", help="Only this account.")]
AsOfDate = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Age the open invoices on this day, YYYY-MM-DD (default: today). The open "
        "amounts are those recorded now.",
        show_default=False,
    ),
]


# Recording ---------------------------------------------------------------------------


@payment_app.command("record")
@refusals
def payment_record(
    account: Annotated[str, typer.Argument(help="The account that paid, e.g. ACME-001.")],
    payment_id: Annotated[
        str,
        typer.Option(
            "--id",
            help="Your unique id for this payment (per account), e.g. the bank transaction "
            "id; the same id again with the same amount and date records nothing.",
            show_default=False,
        ),
    ],
    amount: Annotated[
        str,
        typer.Option(
            "--amount",
            help="The amount received in the account's currency, an exact decimal with a "
            "dot and at most the currency's decimals: 120.00.",
            show_default=False,
        ),
    ],
    received_on: Annotated[
        str, typer.Option("--date", help="The day it was received: YYYY-MM-DD.", show_default=False)
    ],
    reference: Annotated[
        str | None, typer.Option("--reference", help="Free text kept with it (bank reference).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Record a payment received from an account, and show where the money went.

    Example: [bold]billrun payment record ACME-001 --id BANK-2026-0042 --amount 120.00
    --date 2026-02-10 --reference "SEPA 0042"[/bold]

    It pays the account's open invoices oldest first; what is left goes to the
    account's credit balance (used by its next invoices). Paying invoices that
    suspended the account reinstates it. The same --id again with the same amount and
    date records nothing (safe to retry); with other data it is refused.
    """
    paid = decimal_option("--amount", amount)
    on = date_option("--date", received_on)
    with runtime() as rt:
        recording = record_payment(rt.billing, account, payment_id, paid, on, reference)
    if json_out:
        output.print_json(recording_json(recording))
        return
    payment = recording.payment
    currency = recording.currency
    received = round_to_currency(payment.amount, currency)
    if not recording.recorded:
        output.console.print(
            f"payment {payment.payment_id} was already recorded on {account} "
            f"({received} {currency} on {payment.received_on}); nothing written.",
            highlight=False,
        )
        return
    output.console.print(
        f"payment {payment.payment_id} recorded on {account}: {received} {currency} "
        f"received {payment.received_on}"
        + (f" (reference {payment.reference})" if payment.reference else ""),
        highlight=False,
    )
    output.console.print(allocation_table(recording))
    output.console.print(
        f"balance now {round_to_currency(recording.balance, currency)} {currency} (credit "
        f"{round_to_currency(recording.credit_balance, currency)} {currency})",
        highlight=False,
    )


def allocation_table(recording: PaymentRecording) -> Table:
    currency = recording.currency

    def money(amount: Decimal) -> str:
        return f"{round_to_currency(amount, currency)} {currency}"

    table = output.compact_table("Where it went")
    table.add_column("to")
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("still open", justify="right", no_wrap=True)
    for allocation in recording.payment.allocations:
        document = allocation.document_id
        table.add_row(
            f"invoice {recording.numbers[document]}",
            money(allocation.amount),
            money(recording.open_after[document]),
        )
    table.add_row("credit balance", money(recording.payment.credit), "")
    return table


@payment_app.command("list")
@refusals
def payment_list(account: AccountFilter = None, json_out: JsonFlag = False) -> None:
    """List payments, newest received first: how much, how (manual or collected by a
    run), what each paid and what went to credit.

    Example: [bold]billrun payment list --account ACME-001 --json[/bold]
    """
    with runtime() as rt:
        if account is not None:
            rt.billing.get_account(account)  # an unknown account is refused
        rows = rt.read_side.fresh_receivables().payments(account)
    if json_out:
        output.print_json([row.as_json() for row in rows])
        return
    table = output.compact_table("Payments" + (f" of {account}" if account else ""))
    table.add_column("received", no_wrap=True)
    table.add_column("account", no_wrap=True)
    table.add_column("payment\nreference", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("amount", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)  # the currency, read with the amounts
    table.add_column("paid invoices", no_wrap=True)  # one "number amount" per line
    table.add_column("to\ncredit", justify="right", no_wrap=True)
    for row in rows:
        table.add_row(
            str(row.received_on), row.account,
            Text.assemble(row.payment_id, "\n", (row.reference or "", "dim")),
            row.method, str(row.amount), row.currency,
            "\n".join(f"{a.number} {a.amount}" for a in row.allocations) or "-",
            str(row.credit),
        )  # fmt: skip
    output.print_table(table, droppable=("method", "to\ncredit", "payment\nreference"))
    if not rows:
        output.console.print("no payments recorded")


@payment_app.command("reconcile")
@refusals
def payment_reconcile(account: AccountFilter = None, json_out: JsonFlag = False) -> None:
    """Ask the payment gateway what became of pending collection attempts.

    A collection attempt is pending when the run that made it crashed before the
    gateway answered, or the gateway timed out. The gateway is asked by the attempt's
    idempotency key and its answer is recorded (an approval records the payment);
    an attempt it never received is sent again with the same key. Nothing is ever
    charged twice. Without --account: every account with a pending attempt. The
    gateway is the one runs collect through (BILLRUN_PAYMENT_GATEWAY; default: the
    built-in sandbox).

    Example: [bold]billrun payment reconcile --account ACME-001[/bold]
    """
    with runtime() as rt:
        if account is None:
            accounts = rt.read_side.fresh_receivables().pending_collections()
        else:
            accounts = [account]
        # The gateway runs collect through (BILLRUN_PAYMENT_GATEWAY, default the sandbox):
        # asking another one about their attempts would be asking the wrong party.
        gateway = payment_gateway(rt.billing)
        done = reconcile_collections(rt.billing, gateway, accounts, rt.billing.clock().date())
    if json_out:
        output.print_json([reconciliation_json(r) for r in done])
        return
    if not done:
        output.console.print("no pending collection attempts")
    for reconciliation in done:
        output.console.print(reconciliation_text(reconciliation), highlight=False)


def reconciliation_json(reconciliation: Reconciliation) -> dict[str, Any]:
    pending, after = reconciliation.pending, reconciliation.after
    if pending is None:
        return {"account": reconciliation.account_id, "attempt": None}
    found = after or pending
    return {
        "account": reconciliation.account_id,
        "attempt": {
            "attempt_id": str(pending.attempt_id),
            "run_id": pending.run_id,
            "amount": str(pending.amount),
            "number": pending.number,
            "outcome": None if found.outcome is None else found.outcome.value,
            "pending": found.pending,
            "reference": found.reference,
            "message": found.message,
            "retry_on": found.retry_on.isoformat() if found.retry_on else None,
        },
    }


def reconciliation_text(reconciliation: Reconciliation) -> str:
    pending, after = reconciliation.pending, reconciliation.after
    if pending is None:
        return f"{reconciliation.account_id}: no pending collection attempt"
    found = after or pending
    about = f"collection of {pending.amount} by run {pending.run_id}"
    if found.pending:
        return (
            f"{reconciliation.account_id}: {about} is still pending (the gateway does not "
            "know yet); try again later"
        )
    assert found.outcome is not None
    text = f"{reconciliation.account_id}: {about}: {found.outcome.value}"
    if found.reference:
        text += f" (gateway reference {found.reference})"
    if found.message:
        text += f": {found.message}"
    return text


@ar_app.command("aging")
@refusals
def ar_aging(as_of: AsOfDate = None, json_out: JsonFlag = False) -> None:
    """What each account owes, by days past the due date, and totals per currency.

    Buckets: current (not yet due), 1-30, 31-60, 61-90 and over 90 days past due.
    Balance = open amounts - credit balance. Accounts with nothing open and no
    credit are left out.

    Example: [bold]billrun ar aging --as-of 2026-03-31 --json[/bold]
    """
    with runtime() as rt:
        day = as_of_day(rt, as_of)
        report = rt.read_side.fresh_receivables().aging(day)
    if json_out:
        output.print_json(report.as_json())
        return
    output.print_table(aging_table(report), droppable=("credit", "open"))
