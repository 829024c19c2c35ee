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
  instead of charging again (`application.receivables.collection`).

Why an aggregate of its own and not the Account's: allocation must be
serialised per account (two payments must not pay the same euro twice), and it
changes for reasons billing does not (payments, dunning, collection); the
Account aggregate stays about what is billed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from domain.receivables import events
from domain.receivables.allocation import (
    Item,
    ReceivablesError,
    allocate,
    take_back,
)
from domain.receivables.collection import (
    COLLECTION_RETRY_DAYS,
    CollectionAttempt,
    CollectionType,
    GatewayOutcome,
    collection_attempt_uuid,
)
from domain.receivables.dunning import DunningAction, DunningRules
from domain.receivables.receivables_state import ReceivablesState
from domain.shared.dispatch import Dispatch
from domain.shared.ids import NAMESPACE
from domain.shared.model import DomainEvent
from domain.shared.money import is_currency, round_to_currency

DEFAULT_PAYMENT_TERMS_DAYS = 30
"""Days net when neither the account nor its bill group says (the one definition:
the seller's settings and the import refer to it)."""


def receivables_uuid(account_id: str) -> UUID:
    return uuid5(NAMESPACE, f"receivables:{account_id}")


class Receivables(ReceivablesState):
    """An account's receivables' commands: each checks the state, then records an event."""

    @classmethod
    def open(cls, account_id: str, currency: str, at: datetime) -> Receivables:
        if not is_currency(currency):
            raise ReceivablesError(f"receivables of {account_id}: unknown currency {currency!r}")
        receivables = cls(receivables_uuid(account_id))
        receivables._trigger(events.ReceivablesOpened, at, account_id=account_id, currency=currency)
        return receivables

    def _trigger(self, event_class: type[DomainEvent], at: datetime, **fields: Any) -> None:
        # Version 2 events name their account and currency themselves, so the
        # relay does not have to look the aggregate's opening event up.
        if issubclass(event_class, events.AccountEvent):
            fields.setdefault("account_id", self.account_id)
        if issubclass(event_class, events.MoneyEvent):
            fields.setdefault("currency", self.currency)
        super()._trigger(event_class, at, **fields)

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
        self._trigger(events.PaymentTermsSet, at, days=days)
        return True

    def set_autopay(self, token: str | None, at: datetime) -> bool:
        token = token.strip() if token and token.strip() else None
        if token == self.autopay_token:
            return False
        self._trigger(events.AutoPaySet, at, token=token)
        return True

    def suspend(self, reason: str, at: datetime) -> bool:
        """Suspend the account by hand (False: an operator suspended it already).
        A suspended account's invoices are held where its bill group says so."""
        if not reason.strip():
            raise ReceivablesError(f"receivables of {self.account_id}: a suspension needs a reason")
        if self.suspended_by_operator:
            return False
        self._trigger(events.AccountSuspendedByOperator, at, reason=reason.strip())
        return True

    def reactivate(self, reason: str, at: datetime) -> bool:
        """Lift a suspension, by hand or by dunning (False: not suspended)."""
        if not reason.strip():
            raise ReceivablesError(
                f"receivables of {self.account_id}: a reactivation needs a reason"
            )
        if not self.suspended:
            return False
        self._trigger(events.AccountReinstated, at, reason=reason.strip())
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
            events.InvoicePosted,
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
            allocations = take_back(owed - from_credit, paid)
            credit = -from_credit
        self._trigger(
            events.InvoiceWithdrawn,
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
            events.PaymentReceived,
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
            events.CreditNotePosted,
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
    ) -> list[events.DunningApplied]:
        """Apply to each overdue invoice the highest stage it has reached, if that
        stage was not applied to it yet; suspend when a stage says so. Returns what
        was applied (the caller bills the late fees)."""
        applied: list[events.DunningApplied] = []
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
                events.DunningApplied,
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
            if isinstance(event, events.DunningApplied):
                applied.append(event)
            if stage.suspend:
                self._trigger(
                    events.AccountSuspended,
                    at,
                    run_id=run_id,
                    invoice_id=item.document_id,
                    stage=number,
                    reason=f"invoice {item.number} {days} days overdue (dunning stage {number})",
                )
        return applied

    def record_notice(self, invoice_id: UUID, stage: int, dispatch: Dispatch, at: datetime) -> bool:
        """Record that a stage's notice went out; a second time records nothing."""
        if (invoice_id, stage) in self.notices_sent:
            return False
        self._trigger(
            events.DunningNoticeSent,
            at,
            invoice_id=invoice_id,
            stage=stage,
            **dispatch.fields(),
        )
        return True

    def _reinstate_if_paid(self, at: datetime) -> None:
        if not self.suspended or self.suspended_by_operator:
            return
        if all(self.items[i].open_amount <= 0 for i in self.suspended_by):
            self._trigger(events.AccountReinstated, at, reason="the overdue invoices are paid")

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
            events.CollectionAttempted,
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
            events.CollectionAnswered,
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
