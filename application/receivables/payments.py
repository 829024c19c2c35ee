"""The operator's accounts-receivable commands: recording a payment, setting an
account's payment terms and auto-pay, reconciling pending collections.

Each goes through the account's Receivables aggregate, so allocation (oldest
open invoice first, the rest to credit) is the aggregate's and two payments
recorded at once never pay the same invoice twice: the second save conflicts on
the aggregate's version, and the payment is allocated again on the state the
first one left. A refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.receivables.collection import Collector
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.ports import PaymentGateway
from application.shared.retrying import SAVE_ATTEMPTS
from domain.receivables.collection import CollectionAttempt
from domain.receivables.events import PaymentReceived
from domain.receivables.receivables import DEFAULT_PAYMENT_TERMS_DAYS, Receivables
from domain.shared.inputs import InputRefused, check_date, check_decimal, check_text


class PaymentRefused(ApplicationError):
    pass


@dataclass(frozen=True)
class PaymentRecording:
    """What `record_payment` did, and where the money went."""

    account_id: str
    currency: str
    recorded: bool
    """False: the same payment was already recorded; nothing written."""
    payment: PaymentReceived
    numbers: dict[UUID, str]
    """The number of each invoice the payment was allocated to."""
    open_after: dict[UUID, Decimal]
    """What is still open on each of those invoices, now."""
    balance: Decimal
    """The account's balance now: open amounts minus credit."""
    credit_balance: Decimal


def record_payment(
    billing: Billing,
    account_id: str,
    payment_id: str,
    amount: Decimal,
    received_on: date,
    reference: str | None = None,
) -> PaymentRecording:
    """Record money received from an account, allocated to its open invoices oldest
    first, the rest to its credit balance. The same payment id again with the same
    amount and date records nothing; with other data it is refused."""
    reference = reference.strip() if reference and reference.strip() else None
    try:  # the input rules of every entry point (domain/shared/inputs.py)
        check_text(payment_id, identifier=True)
        check_decimal(amount)
        check_date(received_on)
        if reference is not None:
            check_text(reference)
    except InputRefused as error:
        raise PaymentRefused(f"payment {payment_id!r}: {error}") from None

    def apply(receivables: Receivables) -> bool:
        known = receivables.payments.get(payment_id)
        if known is not None and reference is not None and known.reference != reference:
            raise PaymentRefused(
                f"payment {payment_id} is already recorded for {account_id} with reference "
                f"{known.reference or '(none)'}, not {reference}"
            )
        return receivables.receive_payment(
            payment_id, amount, received_on, billing.clock(), reference=reference
        )

    receivables, recorded = _change(billing, account_id, apply, payments=True)
    payment = receivables.payments[payment_id]
    ids = [a.document_id for a in payment.allocations]
    return PaymentRecording(
        account_id=account_id,
        currency=receivables.currency,
        recorded=recorded,
        payment=payment,
        numbers={i: receivables.items[i].number for i in ids},
        open_after={i: receivables.items[i].open_amount for i in ids},
        balance=receivables.balance,
        credit_balance=receivables.credit,
    )


@dataclass(frozen=True)
class PaymentTerms:
    days: int
    """Net days from issue to due date for the account's next invoices."""
    source: str
    """`account` (its own terms), `bill group <id>`, or `default`."""


def set_payment_terms(billing: Billing, account_id: str, days: int | None) -> bool:
    """Set the account's own net days (None: back to its bill group's terms); False
    when they already were. Invoices already posted keep their due dates."""
    _, changed = _change(billing, account_id, lambda r: r.set_payment_terms(days, billing.clock()))
    return changed


def set_autopay(billing: Billing, account_id: str, token: str | None) -> bool:
    """Put the account on auto-pay with a gateway token (None: off); False when it
    already was so. Runs that collect payments charge it."""
    if token is not None and not token.strip():
        raise PaymentRefused("--token: an auto-pay token cannot be empty (use --off)")
    _, changed = _change(billing, account_id, lambda r: r.set_autopay(token, billing.clock()))
    return changed


def suspend_account(billing: Billing, account_id: str, reason: str) -> tuple[Receivables, bool]:
    """Suspend an account by hand; (its receivables, False when it was already)."""
    return _change(billing, account_id, lambda r: r.suspend(reason, billing.clock()))


def reactivate_account(billing: Billing, account_id: str, reason: str) -> tuple[Receivables, bool]:
    """Lift an account's suspension; (its receivables, False when not suspended)."""
    return _change(billing, account_id, lambda r: r.reactivate(reason, billing.clock()))


def payment_terms(billing: Billing, account_id: str) -> PaymentTerms:
    """The terms the account's next invoice gets: its own, else its bill group's,
    else 30 days net."""
    account = billing.get_account(account_id)
    receivables = billing.find_receivables(account_id)
    if receivables is not None and receivables.payment_terms_days is not None:
        return PaymentTerms(receivables.payment_terms_days, "account")
    group = billing.get_bill_group(account.bill_group)
    if group.payment_terms_days is not None:
        return PaymentTerms(group.payment_terms_days, f"bill group {account.bill_group}")
    return PaymentTerms(DEFAULT_PAYMENT_TERMS_DAYS, "default")


@dataclass(frozen=True)
class Reconciliation:
    account_id: str
    pending: CollectionAttempt | None
    """The attempt that was pending before (None: nothing was)."""
    after: CollectionAttempt | None
    """The same attempt once the gateway was asked (still pending: it does not know)."""


def reconcile_collections(
    billing: Billing, gateway: PaymentGateway, account_ids: Iterable[str], as_of: date
) -> list[Reconciliation]:
    """Ask the gateway what became of each account's pending collection attempt and
    record its answer (an approval records the payment); never charges twice."""
    collector = Collector(billing, gateway)
    done = []
    for account_id in account_ids:
        billing.get_account(account_id)  # an unknown account is refused
        receivables = billing.find_receivables(account_id)
        pending = None if receivables is None else receivables.pending_attempt
        after = collector.reconcile_account(account_id, as_of) if pending else None
        done.append(Reconciliation(account_id, pending, after))
    return done


def _change(
    billing: Billing,
    account_id: str,
    command: Callable[[Receivables], bool],
    payments: bool = False,
) -> tuple[Receivables, bool]:
    """Run `command` on the account's receivables and save what it recorded; on a
    conflicting save (someone else changed them meanwhile), run it again on the
    current state."""
    for _ in range(SAVE_ATTEMPTS):
        receivables = _receivables_of(billing, account_id, payments)
        changed = command(receivables)
        if not changed:
            return receivables, False
        try:
            billing.save(receivables)
        except RecordConflictError:
            continue
        return receivables, True
    raise PaymentRefused(f"the receivables of {account_id} keep changing: try again")


def _receivables_of(billing: Billing, account_id: str, payments: bool) -> Receivables:
    """The account's receivables (opened if none yet). An account billed onto
    another's invoices has no invoices of its own: its payments and terms belong to
    its invoicer (payments are still taken on receivables it kept from before)."""
    account = billing.get_account(account_id)
    found = billing.find_receivables(account_id)
    if account.invoicer is not None and (found is None or not payments):
        raise PaymentRefused(
            f"account {account_id} is billed onto {account.invoicer}'s invoices: "
            f"its receivables are {account.invoicer}'s"
        )
    return found or Receivables.open(account.account_id, account.currency, billing.clock())
