"""Receivables: an account's open items, payments, dunning and collection (one
`Receivables` aggregate per invoicing account), public form.

Every body carries `account_id`, and `currency` beside every amount (the
account's). Receivables events stored since class version 2 carry both; older
ones (upcast with None) get them from the aggregate's facts (its
`ReceivablesOpened`). Payment tokens never leave billrun:
`AutoPaySet` says whether auto-pay is on and the token's last four characters.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from infrastructure.contract.base import Amount, Currency, Facts, PublicEvent, PublicForm, plain


class ReceivablesEvent(PublicEvent):
    account_id: str


class MoneyEvent(ReceivablesEvent):
    currency: Currency


class InvoicePostedV1(MoneyEvent):
    """A closed invoice became an open item of the account."""

    ce_type = "billrun.receivables.invoice_posted.v1"
    invoice_id: str
    number: str
    issued_on: date
    due_on: date
    amount: Amount


class PaymentReceivedV1(MoneyEvent):
    """A payment was recorded and allocated to the oldest open items."""

    ce_type = "billrun.receivables.payment_received.v1"
    payment_id: str
    amount: Amount
    received_on: date
    method: str
    reference: str | None
    """The payer's or bank's reference, as recorded."""
    credit: Amount
    """The account's unallocated credit after this payment."""


class CreditNotePostedV1(MoneyEvent):
    """A credit note was posted against the invoice it corrects."""

    ce_type = "billrun.receivables.credit_note_posted.v1"
    credit_note_id: str
    number: str
    corrects_invoice_id: str
    amount: Amount
    issued_on: date


class DunningAppliedV1(MoneyEvent):
    """A bill run applied a dunning stage to an overdue invoice."""

    ce_type = "billrun.receivables.dunning_applied.v1"
    run_id: str
    invoice_id: str
    number: str
    rule: str
    stage: int
    actions: list[Literal["notify", "late_fee", "suspend"]]
    days_overdue: int
    overdue_amount: Amount
    fee: Amount | None


class AccountSuspendedV1(ReceivablesEvent):
    """A dunning stage suspended the account."""

    ce_type = "billrun.receivables.account_suspended.v1"
    run_id: str
    invoice_id: str
    stage: int
    reason: str


class AccountReinstatedV1(ReceivablesEvent):
    """A suspended account was reinstated."""

    ce_type = "billrun.receivables.account_reinstated.v1"
    reason: str


class AutoPaySetV1(ReceivablesEvent):
    """Auto-pay was switched on (with a gateway token) or off. The token itself is
    never published."""

    ce_type = "billrun.receivables.auto_pay_set.v1"
    enabled: bool
    token_last4: str | None


class CollectionAttemptedV1(MoneyEvent):
    """A bill run asked the payment gateway to collect an amount."""

    ce_type = "billrun.receivables.collection_attempted.v1"
    run_id: str
    attempt_id: str
    attempt: int
    """1 for the first attempt on this balance, 2 for its first retry, ..."""
    amount: Amount
    collection_type: str


class CollectionAnsweredV1(ReceivablesEvent):
    """The payment gateway answered a collection attempt."""

    ce_type = "billrun.receivables.collection_answered.v1"
    attempt_id: str
    outcome: Literal["approved", "declined", "error"]
    reference: str | None
    retry_on: date | None


def opened_facts(payload: dict[str, Any]) -> Facts:
    return {"account_id": payload["account_id"], "currency": payload["currency"]}


# The event's own field (stored from class version 2 on), else the facts (older events).


def _account(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {"account_id": p.get("account_id") or f.get("account_id")}


def _money(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        "account_id": p.get("account_id") or f.get("account_id"),
        "currency": p.get("currency") or f.get("currency"),
    }


def _posted(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_money(p, f),
        "invoice_id": p["invoice_id"],
        "number": p["number"],
        "issued_on": p["issued_on"],
        "due_on": p["due_on"],
        "amount": plain(p["amount"]),
    }


def _payment(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_money(p, f),
        "payment_id": p["payment_id"],
        "amount": plain(p["amount"]),
        "received_on": p["received_on"],
        "method": p["method"],
        "reference": p.get("reference"),
        "credit": plain(p["credit"]),
    }


def _credit_note(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_money(p, f),
        "credit_note_id": p["credit_note_id"],
        "number": p["number"],
        "corrects_invoice_id": p["corrects"],
        "amount": plain(p["amount"]),
        "issued_on": p["issued_on"],
    }


def _dunning(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_money(p, f),
        "run_id": p["run_id"],
        "invoice_id": p["invoice_id"],
        "number": p["number"],
        "rule": p["rule"],
        "stage": p["stage"],
        "actions": list(p["actions"]),
        "days_overdue": p["days_overdue"],
        "overdue_amount": plain(p["overdue_amount"]),
        "fee": plain(p.get("fee")),
    }


def _suspended(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_account(p, f),
        "run_id": p["run_id"],
        "invoice_id": p["invoice_id"],
        "stage": p["stage"],
        "reason": p["reason"],
    }


def _reinstated(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_account(p, f), "reason": p["reason"]}


def _auto_pay(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    token = p.get("token")
    return {
        **_account(p, f),
        "enabled": token is not None,
        # Only when the token is long enough that four characters reveal little.
        "token_last4": token[-4:] if token and len(token) >= 12 else None,
    }


def _attempted(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_money(p, f),
        "run_id": p["run_id"],
        "attempt_id": p["attempt_id"],
        "attempt": p["number"],
        "amount": plain(p["amount"]),
        "collection_type": p["collection_type"],
    }


def _answered(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_account(p, f),
        "attempt_id": p["attempt_id"],
        "outcome": p["outcome"],
        "reference": p.get("reference"),
        "retry_on": p.get("retry_on"),
    }


FORMS = (
    PublicForm("InvoicePosted", InvoicePostedV1, _posted, "invoice_id"),
    PublicForm("PaymentReceived", PaymentReceivedV1, _payment, "payment_id"),
    PublicForm("CreditNotePosted", CreditNotePostedV1, _credit_note, "credit_note_id"),
    PublicForm("DunningApplied", DunningAppliedV1, _dunning, "invoice_id"),
    PublicForm("AccountSuspended", AccountSuspendedV1, _suspended, "account_id"),
    PublicForm("AccountReinstated", AccountReinstatedV1, _reinstated, "account_id"),
    PublicForm("AutoPaySet", AutoPaySetV1, _auto_pay, "account_id"),
    PublicForm("CollectionAttempted", CollectionAttemptedV1, _attempted, "attempt_id"),
    PublicForm("CollectionAnswered", CollectionAnsweredV1, _answered, "attempt_id"),
)

OPENERS = {"ReceivablesOpened": opened_facts}

SELF_CONTAINED_FROM_V2 = frozenset(form.stored for form in FORMS)
"""Stored as class version 2 or later, these carry their account id and currency."""
