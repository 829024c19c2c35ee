"""The Receivables aggregate: an account's accounts receivable.

One per invoicing account (id: uuid5 of the account id), in the account's
currency. It holds what the account owes and has paid, document by document:

- each closed invoice is *posted* with its due date (payment terms per account,
  else per bill group, else 30 days) and leaves only if it is rejected or
  cancelled (*withdrawn*); a credit note is posted against the invoice it
  corrects;
- money received (a payment, a credit note, a withdrawn invoice's allocations,
  a credit balance) is allocated to open invoices oldest first (due date, then
  number); what is left is the account's credit balance, which the next posted
  invoices use first. Allocation neither creates nor loses money
  (`allocate`, property-tested);
- dunning: the highest stage of the group's rules an overdue invoice has
  reached is applied once per invoice and stage (`DunningApplied`), suspending
  the account when the stage says so; the account is reinstated once every
  invoice that suspended it is paid;
- collection: an auto-pay account's payments are collected through a gateway;
  each attempt is recorded *before* the gateway is called, with an idempotency
  key, so a crash or a retried run reconciles the attempt with the gateway
  instead of charging again (`application.collection`).

Why an aggregate of its own and not the Account's: allocation must be
serialised per account (two payments must not pay the same euro twice), and it
changes for reasons billing does not (payments, dunning, collection); the
Account aggregate stays about what is billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from uuid import UUID, uuid5

from domain.receivables.dunning import DunningAction, DunningRules
from domain.shared.errors import DomainError
from domain.shared.ids import NAMESPACE
from domain.shared.model import Aggregate, DomainEvent, ValueObject
from domain.shared.money import is_currency, round_to_currency

DEFAULT_PAYMENT_TERMS_DAYS = 30
"""Days net when neither the account nor its bill group says (the one definition:
the seller's settings and the import refer to it)."""
COLLECTION_RETRY_DAYS = (1, 3, 7)
"""After a failed collection attempt, the next is made this many days later (the
first retry 1 day after, ...); after the last, collection stops until a payment
or a new invoice."""


class ReceivablesError(DomainError):
    pass


def receivables_uuid(account_id: str) -> UUID:
    return uuid5(NAMESPACE, f"receivables:{account_id}")


def collection_attempt_uuid(account_id: str, run_id: str) -> UUID:
    """One collection attempt per account and run: a repeated run finds it."""
    return uuid5(NAMESPACE, f"collection:{account_id}:{run_id}")


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    """Unpaid or partially paid after its due date (as of a given day)."""
    WITHDRAWN = "withdrawn"
    """Rejected or cancelled: never owed."""


class CollectionType(StrEnum):
    """How a run collects from auto-pay accounts (the seed's collection types)."""

    ACCOUNT_BALANCE = "account_balance"
    """Collect the whole balance when it is positive."""
    INVOICE_DUE_DATE = "invoice_due_date"
    """Collect the open amount of the invoices that are due."""


class GatewayOutcome(StrEnum):
    """What a payment gateway answered to a charge (application.ports.PaymentGateway)."""

    APPROVED = "approved"
    DECLINED = "declined"
    ERROR = "error"
    """The gateway failed before charging: safe to retry with the same key."""
    TIMEOUT = "timeout"
    """No answer: the charge may or may not have happened. Never guessed: the
    attempt stays pending until the gateway says what happened."""


class GatewayAnswer(ValueObject):
    """A payment gateway's answer to a charge or a look-up."""

    outcome: GatewayOutcome
    reference: str | None = None
    """The gateway's id of the charge."""
    message: str | None = None
    charged_on: date | None = None
    """The day the gateway took the money (approved answers), when it says: what a
    payment found later by reconciling is dated, not the day it was found."""


class Allocation(ValueObject):
    """Part of an amount received, applied to one open invoice."""

    document_id: UUID
    amount: Decimal


@dataclass
class Item:
    """A posted document (an invoice, or a credit note's record) and what is paid."""

    document_id: UUID
    number: str
    issued_on: date
    due_on: date
    amount: Decimal
    allocated: Decimal
    withdrawn: bool = False
    dunning_stage: int = 0
    """The highest dunning stage applied to this invoice (0: none)."""

    @property
    def open_amount(self) -> Decimal:
        return Decimal(0) if self.withdrawn else self.amount - self.allocated

    def status(self, as_of: date | None = None) -> PaymentStatus:
        if self.withdrawn:
            return PaymentStatus.WITHDRAWN
        if self.open_amount <= 0:
            return PaymentStatus.PAID
        if as_of is not None and as_of > self.due_on:
            return PaymentStatus.OVERDUE
        return PaymentStatus.PARTIALLY_PAID if self.allocated > 0 else PaymentStatus.UNPAID

    def days_overdue(self, as_of: date) -> int:
        return max(0, (as_of - self.due_on).days)


def allocate(amount: Decimal, items: list[Item]) -> tuple[list[Allocation], Decimal]:
    """Apply `amount` to the open items oldest first (due date, issue date, number);
    returns the allocations and what is left over. Never more than an item's open
    amount; the allocations plus the remainder always equal `amount`."""
    if amount < 0:
        raise ReceivablesError(f"cannot allocate a negative amount ({amount})")
    left = amount
    allocations = []
    for item in sorted(items, key=lambda i: (i.due_on, i.issued_on, i.number)):
        if left <= 0:
            break
        take = min(left, item.open_amount)
        if take > 0:
            allocations.append(Allocation(document_id=item.document_id, amount=take))
            left -= take
    return allocations, left


def _take_back(amount: Decimal, items: list[Item]) -> list[Allocation]:
    """Negative allocations taking `amount` back from paid items, newest first."""
    taken = []
    for item in sorted(items, key=lambda i: (i.due_on, i.issued_on, i.number), reverse=True):
        if amount <= 0:
            break
        take = min(amount, item.allocated)
        taken.append(Allocation(document_id=item.document_id, amount=-take))
        amount -= take
    if amount > 0:
        raise ReceivablesError(f"cannot take back {amount}: nothing paid holds it")
    return taken


@dataclass
class CollectionAttempt:
    attempt_id: UUID
    run_id: str
    idempotency_key: str
    amount: Decimal
    number: int
    """1 for a first attempt, 2 for its first retry, ..."""
    outcome: GatewayOutcome | None = None
    """None: recorded, the gateway's answer not yet (a crash, or before the call)."""
    reference: str | None = None
    message: str | None = None
    retry_on: date | None = None

    @property
    def pending(self) -> bool:
        """Not known to have failed or succeeded: reconcile before anything else."""
        return self.outcome is None or self.outcome is GatewayOutcome.TIMEOUT


# Events ----------------------------------------------------------------------


class ReceivablesOpened(DomainEvent):
    account_id: str
    currency: str


class PaymentTermsSet(DomainEvent):
    days: int | None
    """Net days for this account; None: the bill group's terms."""


class AutoPaySet(DomainEvent):
    token: str | None
    """The payment method's token at the gateway; None: auto-pay off."""


class InvoicePosted(DomainEvent):
    invoice_id: UUID
    number: str
    issued_on: date
    due_on: date
    amount: Decimal
    allocations: tuple[Allocation, ...] = ()
    """A positive invoice: the account's credit balance applied to it at once. A
    negative one (credits above charges): its amount applied to the open invoices."""
    credit_change: Decimal = Decimal(0)
    """The change to the credit balance: minus what paid this invoice, or plus what
    a negative invoice left after the open invoices."""


class InvoiceWithdrawn(DomainEvent):
    """A posted invoice was rejected or cancelled: what was paid on it goes to the
    other open invoices, oldest first, and the rest to the credit balance. A
    negative invoice's withdrawal takes back what it gave: from the credit balance
    first, then from the invoices it paid (negative allocations, newest first)."""

    invoice_id: UUID
    reason: str
    allocations: tuple[Allocation, ...] = ()
    credit: Decimal
    """The change to the credit balance (negative when a negative invoice goes)."""


class PaymentReceived(DomainEvent):
    payment_id: str
    amount: Decimal
    received_on: date
    method: str
    """`manual` (recorded by an operator), `collection` (collected by a run)."""
    reference: str | None
    allocations: tuple[Allocation, ...]
    credit: Decimal
    """What was left after the open invoices: added to the credit balance."""


class CreditNotePosted(DomainEvent):
    credit_note_id: UUID
    number: str
    corrects: UUID
    amount: Decimal
    issued_on: date
    allocations: tuple[Allocation, ...]
    credit: Decimal


class DunningApplied(DomainEvent):
    run_id: str
    invoice_id: UUID
    number: str
    rule: str
    stage: int
    actions: tuple[DunningAction, ...]
    days_overdue: int
    overdue_amount: Decimal
    fee: Decimal | None
    """The late fee, billed as a one-off charge on the account's next invoice."""
    template: str | None = None


class AccountSuspended(DomainEvent):
    run_id: str
    invoice_id: UUID
    stage: int
    reason: str


class AccountReinstated(DomainEvent):
    reason: str


class DunningNoticeSent(DomainEvent):
    invoice_id: UUID
    stage: int
    channel: str
    recipient: str | None
    message_id: str
    location: str | None


class CollectionAttempted(DomainEvent):
    """Recorded, and committed, before the gateway is called."""

    attempt_id: UUID
    run_id: str
    idempotency_key: str
    amount: Decimal
    number: int
    collection_type: CollectionType


class CollectionAnswered(DomainEvent):
    """The gateway's answer to an attempt (an approval also records the payment)."""

    attempt_id: UUID
    outcome: GatewayOutcome
    reference: str | None
    message: str | None
    retry_on: date | None = None


# The aggregate ---------------------------------------------------------------


class Receivables(Aggregate):
    kind = "receivables"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.account_id = ""
        self.currency = ""
        self.payment_terms_days: int | None = None
        self.autopay_token: str | None = None
        self.items: dict[UUID, Item] = {}
        self.credit_notes: dict[UUID, Item] = {}
        self.credit = Decimal(0)
        self.payments: dict[str, PaymentReceived] = {}
        self.suspended = False
        self.suspended_by: set[UUID] = set()
        """The invoices whose dunning suspended the account: paid, it is reinstated."""
        self.attempts: dict[UUID, CollectionAttempt] = {}
        self.failed_attempts: list[CollectionAttempt] = []
        """Collection attempts declined or failed since the account last paid or was
        invoiced: they set the retry schedule; a payment or a new invoice clears it."""
        self.notices_sent: set[tuple[UUID, int]] = set()

    @classmethod
    def open(cls, account_id: str, currency: str, at: datetime) -> Receivables:
        if not is_currency(currency):
            raise ReceivablesError(f"receivables of {account_id}: unknown currency {currency!r}")
        receivables = cls(receivables_uuid(account_id))
        receivables._trigger(ReceivablesOpened, at, account_id=account_id, currency=currency)
        return receivables

    # Reading -------------------------------------------------------------------

    @property
    def open_items(self) -> list[Item]:
        return [i for i in self.items.values() if i.open_amount > 0]

    @property
    def balance(self) -> Decimal:
        """What the account owes (negative: it is in credit)."""
        zero = round_to_currency(Decimal(0), self.currency)
        return sum((i.open_amount for i in self.items.values()), zero) - self.credit

    def due_amount(self, as_of: date) -> Decimal:
        """The open amount of the invoices due on or before `as_of`."""
        zero = round_to_currency(Decimal(0), self.currency)
        return sum((i.open_amount for i in self.open_items if i.due_on <= as_of), zero)

    def terms_days(self, group_terms: int | None) -> int:
        if self.payment_terms_days is not None:
            return self.payment_terms_days
        return DEFAULT_PAYMENT_TERMS_DAYS if group_terms is None else group_terms

    # Terms and methods ---------------------------------------------------------

    def set_payment_terms(self, days: int | None, at: datetime) -> bool:
        if days is not None and not 0 <= days <= 365:
            raise ReceivablesError(f"payment terms are 0 to 365 days net, not {days}")
        if days == self.payment_terms_days:
            return False
        self._trigger(PaymentTermsSet, at, days=days)
        return True

    def set_autopay(self, token: str | None, at: datetime) -> bool:
        token = token.strip() if token and token.strip() else None
        if token == self.autopay_token:
            return False
        self._trigger(AutoPaySet, at, token=token)
        return True

    # Posting -------------------------------------------------------------------

    def post_invoice(
        self,
        invoice_id: UUID,
        number: str,
        issued_on: date,
        due_on: date,
        amount: Decimal,
        at: datetime,
    ) -> bool:
        """Post a closed invoice (False: already posted); the credit balance pays it
        first."""
        if invoice_id in self.items:
            return False
        self._check_amount(amount, f"invoice {number}")
        if due_on < issued_on:
            raise ReceivablesError(f"invoice {number}: due on {due_on}, before issue {issued_on}")
        if amount >= 0:
            pending = Item(invoice_id, number, issued_on, due_on, amount, Decimal(0))
            allocations, _ = allocate(min(self.credit, amount), [pending])
            credit_change = -sum((a.amount for a in allocations), Decimal(0))
        else:
            allocations, credit_change = allocate(-amount, self.open_items)
        self._trigger(
            InvoicePosted,
            at,
            invoice_id=invoice_id,
            number=number,
            issued_on=issued_on,
            due_on=due_on,
            amount=amount,
            allocations=tuple(allocations),
            credit_change=credit_change,
        )
        self._reinstate_if_paid(at)
        return True

    def withdraw_invoice(self, invoice_id: UUID, reason: str, at: datetime) -> bool:
        """A rejected or cancelled invoice is no longer owed (False: not posted, or
        already withdrawn)."""
        item = self.items.get(invoice_id)
        if item is None or item.withdrawn:
            return False
        if item.amount >= 0:
            others = [i for i in self.open_items if i.document_id != invoice_id]
            allocations, credit = allocate(item.allocated, others)
        else:
            owed = -item.amount
            from_credit = min(self.credit, owed)
            paid = [i for i in self.items.values() if i.allocated > 0 and not i.withdrawn]
            allocations = _take_back(owed - from_credit, paid)
            credit = -from_credit
        self._trigger(
            InvoiceWithdrawn,
            at,
            invoice_id=invoice_id,
            reason=reason,
            allocations=tuple(allocations),
            credit=credit,
        )
        self._reinstate_if_paid(at)
        return True

    def receive_payment(
        self,
        payment_id: str,
        amount: Decimal,
        received_on: date,
        at: datetime,
        method: str = "manual",
        reference: str | None = None,
    ) -> bool:
        """Record a payment, allocated oldest first, the rest to credit. The same
        payment id again records nothing (False); with other data it is refused."""
        if not payment_id.strip():
            raise ReceivablesError("a payment needs a non-empty id")
        known = self.payments.get(payment_id)
        if known is not None:
            if (known.amount, known.received_on) == (amount, received_on):
                return False
            raise ReceivablesError(
                f"payment {payment_id} is already recorded for {self.account_id} with "
                f"{known.amount} {self.currency} on {known.received_on}"
            )
        self._check_amount(amount, f"payment {payment_id}")
        if amount <= 0:
            raise ReceivablesError(f"payment {payment_id}: amount must be positive, not {amount}")
        allocations, credit = allocate(amount, self.open_items)
        self._trigger(
            PaymentReceived,
            at,
            payment_id=payment_id,
            amount=amount,
            received_on=received_on,
            method=method,
            reference=reference,
            allocations=tuple(allocations),
            credit=credit,
        )
        self._reinstate_if_paid(at)
        return True

    def post_credit_note(
        self,
        credit_note_id: UUID,
        number: str,
        corrects: UUID,
        amount: Decimal,
        issued_on: date,
        at: datetime,
    ) -> bool:
        """Post a credit note: it pays what is open on the invoice it corrects first,
        then the other open invoices, then the credit balance."""
        if credit_note_id in self.credit_notes:
            return False
        self._check_amount(amount, f"credit note {number}")
        if amount <= 0:
            raise ReceivablesError(f"credit note {number}: amount must be positive")
        corrected = self.items.get(corrects)
        if corrected is None:
            raise ReceivablesError(f"credit note {number}: the invoice it corrects is not posted")
        first, left = allocate(amount, [corrected])
        rest, credit = allocate(left, [i for i in self.open_items if i.document_id != corrects])
        self._trigger(
            CreditNotePosted,
            at,
            credit_note_id=credit_note_id,
            number=number,
            corrects=corrects,
            amount=amount,
            issued_on=issued_on,
            allocations=(*first, *rest),
            credit=credit,
        )
        self._reinstate_if_paid(at)
        return True

    def _check_amount(self, amount: Decimal, where: str) -> None:
        if not amount.is_finite() or amount != round_to_currency(amount, self.currency):
            raise ReceivablesError(
                f"{where}: {amount} is not an amount of {self.currency} "
                f"(at most its minor unit's decimals)"
            )

    # Dunning -------------------------------------------------------------------

    def run_dunning(
        self, run_id: str, rules: DunningRules, as_of: date, at: datetime
    ) -> list[DunningApplied]:
        """Apply to each overdue invoice the highest stage it has reached, if that
        stage was not applied to it yet; suspend when a stage says so. Returns what
        was applied (the caller bills the late fees)."""
        applied: list[DunningApplied] = []
        if not rules.enabled:
            return applied
        for item in sorted(self.open_items, key=lambda i: (i.due_on, i.number)):
            days = item.days_overdue(as_of)
            reached = rules.reached(days)
            if reached is None or reached[0] <= item.dunning_stage:
                continue
            number, stage = reached
            overdue = item.open_amount
            charges_fee = DunningAction.LATE_FEE in stage.actions
            fee = stage.fee(overdue, self.currency) if charges_fee else None
            self._trigger(
                DunningApplied,
                at,
                run_id=run_id,
                invoice_id=item.document_id,
                number=item.number,
                rule=rules.name,
                stage=number,
                actions=stage.actions,
                days_overdue=days,
                overdue_amount=overdue,
                fee=fee,
                template=stage.template,
            )
            event = self._pending[-1]
            if isinstance(event, DunningApplied):
                applied.append(event)
            if stage.suspend:
                self._trigger(
                    AccountSuspended,
                    at,
                    run_id=run_id,
                    invoice_id=item.document_id,
                    stage=number,
                    reason=f"invoice {item.number} {days} days overdue (dunning stage {number})",
                )
        return applied

    def record_notice(
        self,
        invoice_id: UUID,
        stage: int,
        channel: str,
        recipient: str | None,
        message_id: str,
        location: str | None,
        at: datetime,
    ) -> bool:
        """Record that a stage's notice went out; a second time records nothing."""
        if (invoice_id, stage) in self.notices_sent:
            return False
        self._trigger(
            DunningNoticeSent,
            at,
            invoice_id=invoice_id,
            stage=stage,
            channel=channel,
            recipient=recipient,
            message_id=message_id,
            location=location,
        )
        return True

    def _reinstate_if_paid(self, at: datetime) -> None:
        if not self.suspended:
            return
        if all(self.items[i].open_amount <= 0 for i in self.suspended_by):
            self._trigger(AccountReinstated, at, reason="the overdue invoices are paid")

    # Collection ----------------------------------------------------------------

    @property
    def pending_attempt(self) -> CollectionAttempt | None:
        return next((a for a in self.attempts.values() if a.pending), None)

    def collectable(self, collection_type: CollectionType, as_of: date) -> Decimal:
        """What a run would collect now: the positive balance, or what is due."""
        if collection_type is CollectionType.ACCOUNT_BALANCE:
            return max(self.balance, Decimal(0))
        return self.due_amount(as_of)

    def may_collect(self, as_of: date) -> bool:
        """No attempt pending, and the last failure's retry date (if any) reached;
        after the last retry, only a new invoice or a payment allows another try."""
        if self.pending_attempt is not None:
            return False
        failed = self.failed_attempts
        if not failed:
            return True
        last = failed[-1]
        return last.retry_on is not None and last.retry_on <= as_of

    def start_collection(
        self,
        run_id: str,
        collection_type: CollectionType,
        as_of: date,
        at: datetime,
    ) -> CollectionAttempt | None:
        """Record a collection attempt for what is collectable (None: nothing to
        collect, no auto-pay, or not allowed yet). One attempt per run."""
        attempt_id = collection_attempt_uuid(self.account_id, run_id)
        if self.autopay_token is None or attempt_id in self.attempts:
            return None
        amount = self.collectable(collection_type, as_of)
        if amount <= 0 or not self.may_collect(as_of):
            return None
        self._trigger(
            CollectionAttempted,
            at,
            attempt_id=attempt_id,
            run_id=run_id,
            idempotency_key=f"billrun-{attempt_id}",
            amount=amount,
            number=len(self.failed_attempts) + 1,
            collection_type=collection_type,
        )
        return self.attempts[attempt_id]

    def answer_collection(
        self,
        attempt_id: UUID,
        outcome: GatewayOutcome,
        reference: str | None,
        message: str | None,
        as_of: date,
        at: datetime,
        charged_on: date | None = None,
    ) -> None:
        """Record the gateway's answer: approved records the payment (allocated like
        any other), received on `charged_on` (the day the gateway charged, when
        known) else `as_of`; declined or error schedules the next retry; a timeout
        leaves the attempt pending, to be reconciled."""
        attempt = self.attempts.get(attempt_id)
        if attempt is None:
            raise ReceivablesError(f"no collection attempt {attempt_id} on {self.account_id}")
        if not attempt.pending:
            raise ReceivablesError(
                f"collection attempt {attempt_id} is already answered ({attempt.outcome})"
            )
        retry_on = None
        failed = outcome in (GatewayOutcome.DECLINED, GatewayOutcome.ERROR)
        if failed and attempt.number <= len(COLLECTION_RETRY_DAYS):
            retry_on = as_of + timedelta(days=COLLECTION_RETRY_DAYS[attempt.number - 1])
        self._trigger(
            CollectionAnswered,
            at,
            attempt_id=attempt_id,
            outcome=outcome,
            reference=reference,
            message=message,
            retry_on=retry_on,
        )
        if outcome is GatewayOutcome.APPROVED:
            self.receive_payment(
                f"collection-{attempt_id}",
                attempt.amount,
                as_of if charged_on is None else charged_on,
                at,
                method="collection",
                reference=reference,
            )

    # Evolving state ------------------------------------------------------------

    def _allocate(self, allocations: tuple[Allocation, ...]) -> None:
        for allocation in allocations:
            self.items[allocation.document_id].allocated += allocation.amount

    def _when_ReceivablesOpened(self, event: ReceivablesOpened) -> None:
        self.account_id = event.account_id
        self.currency = event.currency
        self.credit = round_to_currency(Decimal(0), event.currency)

    def _when_PaymentTermsSet(self, event: PaymentTermsSet) -> None:
        self.payment_terms_days = event.days

    def _when_AutoPaySet(self, event: AutoPaySet) -> None:
        self.autopay_token = event.token

    def _when_InvoicePosted(self, event: InvoicePosted) -> None:
        self.items[event.invoice_id] = Item(
            event.invoice_id,
            event.number,
            event.issued_on,
            event.due_on,
            event.amount,
            # A negative invoice is settled by being posted: its amount is credit.
            min(event.amount, round_to_currency(Decimal(0), self.currency)),
        )
        self._allocate(event.allocations)
        self.credit += event.credit_change
        self.failed_attempts = []

    def _when_InvoiceWithdrawn(self, event: InvoiceWithdrawn) -> None:
        item = self.items[event.invoice_id]
        item.withdrawn = True
        item.allocated = Decimal(0)
        self._allocate(event.allocations)
        self.credit += event.credit

    def _when_PaymentReceived(self, event: PaymentReceived) -> None:
        self.payments[event.payment_id] = event
        self.failed_attempts = []
        self._allocate(event.allocations)
        self.credit += event.credit

    def _when_CreditNotePosted(self, event: CreditNotePosted) -> None:
        self.credit_notes[event.credit_note_id] = Item(
            event.credit_note_id,
            event.number,
            event.issued_on,
            event.issued_on,
            -event.amount,
            -event.amount,
        )
        self._allocate(event.allocations)
        self.credit += event.credit

    def _when_DunningApplied(self, event: DunningApplied) -> None:
        self.items[event.invoice_id].dunning_stage = event.stage

    def _when_AccountSuspended(self, event: AccountSuspended) -> None:
        self.suspended = True
        self.suspended_by.add(event.invoice_id)

    def _when_AccountReinstated(self, event: AccountReinstated) -> None:
        self.suspended = False
        self.suspended_by = set()

    def _when_DunningNoticeSent(self, event: DunningNoticeSent) -> None:
        self.notices_sent.add((event.invoice_id, event.stage))

    def _when_CollectionAttempted(self, event: CollectionAttempted) -> None:
        self.attempts[event.attempt_id] = CollectionAttempt(
            attempt_id=event.attempt_id,
            run_id=event.run_id,
            idempotency_key=event.idempotency_key,
            amount=event.amount,
            number=event.number,
        )

    def _when_CollectionAnswered(self, event: CollectionAnswered) -> None:
        attempt = self.attempts[event.attempt_id]
        attempt.outcome = event.outcome
        attempt.reference = event.reference
        attempt.message = event.message
        attempt.retry_on = event.retry_on
        if event.outcome in (GatewayOutcome.DECLINED, GatewayOutcome.ERROR):
            self.failed_attempts.append(attempt)
