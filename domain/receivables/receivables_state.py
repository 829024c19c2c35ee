"""The Receivables' state and how each of its events evolves it (`_when_<Event>`).

`Receivables` (domain.receivables.receivables) adds the commands, which decide;
this class only applies what was decided.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from domain.receivables.allocation import (
    Allocation,
    Item,
)
from domain.receivables.collection import (
    CollectionAttempt,
    GatewayOutcome,
)
from domain.receivables.events import (
    AccountReinstated,
    AccountSuspended,
    AccountSuspendedByOperator,
    AutoPaySet,
    CollectionAnswered,
    CollectionAttempted,
    CreditNotePosted,
    DunningApplied,
    DunningNoticeSent,
    InvoicePosted,
    InvoiceWithdrawn,
    PaymentReceived,
    PaymentTermsSet,
    ReceivablesOpened,
)
from domain.shared.model import Aggregate
from domain.shared.money import round_to_currency


class ReceivablesState(Aggregate):
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
        self.suspended_by_operator = False
        """Suspended by hand: reinstated by hand only."""
        self.attempts: dict[UUID, CollectionAttempt] = {}
        self.failed_attempts: list[CollectionAttempt] = []
        """Collection attempts declined or failed since the account last paid or was
        invoiced: they set the retry schedule; a payment or a new invoice clears it."""
        self.notices_sent: set[tuple[UUID, int]] = set()

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
        self.suspended_by_operator = False

    def _when_AccountSuspendedByOperator(self, event: AccountSuspendedByOperator) -> None:
        self.suspended = True
        self.suspended_by_operator = True

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
