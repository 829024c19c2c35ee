"""The Invoice aggregate: lines gathered, closed with a number, reviewed, credited,
rendered and delivered. Its events are in `domain.invoicing.events`, its review
state machine in `domain.invoicing.review`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from domain.billing.lines import InvoiceLine
from domain.billing.pricing import tax_by_rate
from domain.invoicing import events
from domain.invoicing.documents import (
    CreditedAmount,
    DocumentType,
    InvoiceStatus,
)
from domain.invoicing.invoice_numbers import format_credit_note_number, format_document_number
from domain.invoicing.invoice_state import InvoiceState
from domain.invoicing.review import (
    _TARGETS,
    REVIEW_TRANSITIONS,
    WITHHELD,
    ReviewAction,
    ReviewStatus,
)
from domain.invoicing.review_rules import RuleAction, Verdict, decisive
from domain.shared.dispatch import Dispatch
from domain.shared.errors import InvoiceError
from domain.shared.ids import invoice_uuid
from domain.shared.money import is_currency, round_to_currency


class Invoice(InvoiceState):
    """An invoice's commands: each checks the invoice's state, then records an event."""

    @classmethod
    def open(
        cls, run_id: str, account_id: str, currency: str, posting_date: date, at: datetime
    ) -> Invoice:
        if not is_currency(currency):
            raise InvoiceError(f"invoice of {account_id}: unknown currency {currency!r}")
        invoice = cls(invoice_uuid(run_id, account_id))
        invoice._trigger(
            events.InvoiceOpened,
            at,
            run_id=run_id,
            account_id=account_id,
            currency=currency,
            posting_date=posting_date,
        )
        return invoice

    @classmethod
    def open_credit_note(
        cls, corrected: Invoice, credit_note_id: UUID, reason: str, issued_on: date, at: datetime
    ) -> Invoice:
        """Open the credit note `credit_note_id` correcting `corrected` (checked to be
        creditable), under the run whose settings govern the invoice's rendering and
        delivery, so they govern the credit note's too. Lines are added, then it
        closes (`close`) and is approved like any invoice."""
        corrected.check_creditable()
        reason = reason.strip()
        if not reason:
            raise InvoiceError(f"invoice {corrected.name}: a credit note needs a reason")
        note = cls(credit_note_id)
        note._trigger(
            events.InvoiceOpened,
            at,
            run_id=corrected.released_by_run or corrected.closed_by_run or corrected.run_id,
            account_id=corrected.account_id,
            currency=corrected.currency,
            posting_date=issued_on,
            document_type=DocumentType.CREDIT_NOTE,
            corrects=corrected.id,
            corrects_number=corrected.number,
            reason=reason,
        )
        return note

    def add_line(self, line: InvoiceLine, at: datetime) -> None:
        if self.status is not InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is {self.status.value}: lines cannot be added")
        if line.currency != self.currency:
            raise InvoiceError(
                f"invoice {self.id} is in {self.currency}; "
                f"line {line.line_id} is in {line.currency}"
            )
        if any(existing.line_id == line.line_id for existing in self.lines):
            raise InvoiceError(f"invoice {self.id} already has line {line.line_id}")
        # Totals are exact sums of lines, so each line must already be rounded.
        for name, value in (("amount", line.amount), ("tax", line.tax)):
            if value != round_to_currency(value, self.currency):
                raise InvoiceError(
                    f"line {line.line_id}: {name} {value} has more decimals than "
                    f"{self.currency} allows"
                )
        self._trigger(events.InvoiceLineAdded, at, run_id=self.run_id, line=line)

    def close(
        self,
        number: int,
        at: datetime,
        run_id: str | None = None,
        release: bool = True,
        due_date: date | None = None,
        posting_date: date | None = None,
        issued_by: str | None = None,
        printed_number: str | None = None,
    ) -> None:
        """Close with `number` (`printed_number`: as `issued_by`'s format prints it;
        both None for the default entity); `run_id` is the closing run (default: the opening
        one), `release` False holds rendering and delivery for a later run,
        `due_date` is when payment is due (payment terms), `posting_date` the
        closing run's, which becomes the issue date (default: as opened)."""
        if self.status is not InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is already {self.status.value}")
        if number < 1:
            raise InvoiceError(f"invoice numbers start at 1, not {number}")
        if posting_date == self.posting_date:
            posting_date = None  # unchanged: the event stays as it always was
        issued = posting_date or self.posting_date
        if due_date is not None and issued and due_date < issued:
            raise InvoiceError(
                f"invoice {self.id}: due date {due_date} is before its issue {issued}"
            )
        zero = round_to_currency(Decimal(0), self.currency)
        subtotal = sum((line.amount for line in self.lines), zero)
        tax = self._tax_of_lines()
        self._trigger(
            events.InvoiceClosed,
            at,
            run_id=self.run_id,
            account_id=self.account_id,
            currency=self.currency,
            number=number,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            line_count=len(self.lines),
            closed_by_run=None if run_id in (None, self.run_id) else run_id,
            released=release,
            due_date=due_date,
            document_type=self.document_type,
            posting_date=posting_date,
            tax_per_rate=self.tax_per_rate,
            issued_by=issued_by,
            printed_number=printed_number,
        )

    def release(self, run_id: str, at: datetime) -> bool:
        """Release a held invoice for rendering and delivery; False if it was already."""
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are released")
        if self.released:
            return False
        self._trigger(events.InvoiceReleased, at, run_id=run_id)
        return True

    # Review -------------------------------------------------------------------

    def record_verdicts(self, verdicts: list[Verdict], at: datetime) -> None:
        """Record the validation rules' verdicts on a just-closed draft: the first
        rule that objects decides (quarantined or rejected); all passing, the
        verdicts are recorded and the invoice stays a draft. No verdicts (no rules):
        nothing is recorded."""
        if self.review_status is not ReviewStatus.DRAFT or self.verdicts:
            raise InvoiceError(
                f"invoice {self.name}: rules are applied once, to a draft that just closed"
            )
        if not verdicts:
            return
        verdict = decisive(verdicts)
        recorded = tuple(verdicts)
        if verdict is None:
            self._trigger(events.InvoiceRulesPassed, at, run_id=self.run_id, verdicts=recorded)
        elif verdict.action is RuleAction.REJECT:
            self._trigger(
                events.InvoiceRejected,
                at,
                run_id=self.run_id,
                reason=verdict.reason,
                rule=verdict.rule,
                verdicts=recorded,
            )
        else:
            self._trigger(
                events.InvoiceQuarantined,
                at,
                run_id=self.run_id,
                reason=verdict.reason,
                rule=verdict.rule,
                verdicts=recorded,
            )

    def review(self, action: ReviewAction, reason: str | None, at: datetime) -> bool:
        """Apply an operator's review action; False (nothing recorded) when the invoice
        is already where the action leads. Raises InvoiceError, recording nothing,
        when the action is not allowed from the invoice's review status."""
        if self.review_status is None:
            raise InvoiceError(f"invoice {self.name} is open: only closed invoices are reviewed")
        status = self.review_status
        if action not in REVIEW_TRANSITIONS[status]:
            if status is _TARGETS[action] and action is not ReviewAction.UNQUARANTINE:
                return False
            raise InvoiceError(self._refusal(action))
        reason = reason.strip() if reason and reason.strip() else None
        if action.needs_reason and reason is None:
            raise InvoiceError(f"invoice {self.name}: a reason is needed to {action.value} it")
        if self.delivery is not None and action is not ReviewAction.APPROVE:
            raise InvoiceError(
                f"invoice {self.name} was delivered on {self.delivery.delivered_at.date()}: "
                f"it is issued and cannot be {action.past}; correct it with a new document "
                f"(a credit note: billrun invoice credit {self.name} ...)"
            )
        if action is ReviewAction.APPROVE:
            self._trigger(events.InvoiceApproved, at, run_id=self.run_id, reason=reason)
        elif action is ReviewAction.QUARANTINE:
            self._trigger(events.InvoiceQuarantined, at, run_id=self.run_id, reason=reason)
        elif action is ReviewAction.UNQUARANTINE:
            self._trigger(
                events.InvoiceReleasedFromQuarantine, at, run_id=self.run_id, reason=reason
            )
        elif action is ReviewAction.REJECT:
            self._trigger(events.InvoiceRejected, at, run_id=self.run_id, reason=reason)
        else:
            self._trigger(events.InvoiceCancelled, at, run_id=self.run_id, reason=reason)
        return True

    def approve(self, at: datetime, reason: str | None = None) -> bool:
        return self.review(ReviewAction.APPROVE, reason, at)

    def quarantine(self, reason: str, at: datetime) -> bool:
        return self.review(ReviewAction.QUARANTINE, reason, at)

    def release_from_quarantine(self, at: datetime, reason: str | None = None) -> bool:
        return self.review(ReviewAction.UNQUARANTINE, reason, at)

    def reject(self, reason: str, at: datetime) -> bool:
        return self.review(ReviewAction.REJECT, reason, at)

    def cancel(self, reason: str, at: datetime) -> bool:
        return self.review(ReviewAction.CANCEL, reason, at)

    def _in_review(self) -> ReviewStatus:
        """The review status of a closed invoice; an open one is not in review."""
        if self.review_status is None:
            raise InvoiceError(f"invoice {self.name} is open: it is not in review")
        return self.review_status

    def _refusal(self, action: ReviewAction) -> str:
        status = self._in_review()
        refused = f"invoice {self.name} is {status.value}: it cannot be {action.past}"
        if self.is_credit_note:
            return f"{refused}; a credit note is issued approved, and final"
        if status is ReviewStatus.APPROVED:
            return (
                f"{refused}; approved invoices are final: correct one with a new document "
                f"(a credit note: billrun invoice credit {self.name} ...)"
            )
        if status in (ReviewStatus.REJECTED, ReviewStatus.CANCELLED):
            return f"{refused}; {status.value} invoices are final"
        allowed = ", ".join(a.value for a in REVIEW_TRANSITIONS[status])
        return f"{refused}; a {status.value} invoice can only: {allowed}"

    @property
    def name(self) -> str:
        """How messages name the invoice: its number once closed, else its id."""
        return self.display_number or str(self.id)

    # Credit notes ---------------------------------------------------------------

    @property
    def is_credit_note(self) -> bool:
        return self.document_type is DocumentType.CREDIT_NOTE

    @property
    def is_issued(self) -> bool:
        """Approved, or delivered (a draft delivered by a run without approval): final,
        corrected only by a credit note."""
        return self.is_closed and (
            self.review_status is ReviewStatus.APPROVED
            or (self.delivery is not None and not self.withheld)
        )

    def check_creditable(self) -> None:
        """Refuse (InvoiceError, saying what to do instead) unless a credit note may
        correct this document: an issued invoice, released, with a positive total."""
        if self.is_credit_note:
            raise InvoiceError(
                f"{self.name} is a credit note: only invoices are credited (a credit note "
                "is not corrected by another)"
            )
        if not self.is_closed:
            raise InvoiceError(f"invoice {self.name} is open: only issued invoices are credited")
        status = self._in_review()
        if status in (ReviewStatus.REJECTED, ReviewStatus.CANCELLED):
            raise InvoiceError(
                f"invoice {self.name} is {status.value}: it was never issued, so there is "
                "nothing to credit"
            )
        if not self.is_issued:
            raise InvoiceError(
                f"invoice {self.name} is {status.value}, not issued (approved or delivered): "
                f"a {status.value} invoice is not credited but cancelled "
                f"(billrun invoice cancel {self.name} --reason ...)"
            )
        if not self.released:
            raise InvoiceError(
                f"invoice {self.name} is held until a run reaches its invoicer's bill day: it "
                "has not gone out yet; credit it once it is released"
            )
        if self.total <= 0:
            raise InvoiceError(
                f"invoice {self.name} totals {self.currency} {self.total}: only an invoice "
                "with a positive total is credited"
            )

    def amounts_by_rate(self) -> dict[Decimal, tuple[Decimal, Decimal]]:
        """(net, tax) of the lines at each tax rate: the rate's tax rounded once, or
        on an invoice closed before that rule, the sum of its lines' taxes."""
        zero = round_to_currency(Decimal(0), self.currency)
        if self.tax_per_rate:
            taxes = tax_by_rate(self._net_by_rate, self.currency)
            return {rate: (net, taxes[rate]) for rate, net in self._net_by_rate.items()}
        by_rate: dict[Decimal, tuple[Decimal, Decimal]] = {}
        for line in self.lines:
            net, tax = by_rate.get(line.tax_rate, (zero, zero))
            by_rate[line.tax_rate] = (net + line.amount, tax + line.tax)
        return by_rate

    @property
    def credited_total(self) -> Decimal:
        """What credit notes took off this invoice so far (tax included)."""
        zero = round_to_currency(Decimal(0), self.currency)
        return sum((credit.total for credit in self.credits.values()), zero)

    @property
    def creditable_total(self) -> Decimal:
        """What credit notes may still take off this invoice (tax included)."""
        return self.total - self.credited_total

    def creditable_by_rate(self) -> dict[Decimal, tuple[Decimal, Decimal]]:
        """(net, tax) still creditable at each of the invoice's tax rates."""
        left = self.amounts_by_rate()
        for credit in self.credits.values():
            for part in credit.amounts:
                net, tax = left.get(part.tax_rate, (Decimal(0), Decimal(0)))
                left[part.tax_rate] = (net - part.amount, tax - part.tax)
        return left

    def record_credit(self, credit_note: Invoice, at: datetime) -> None:
        """Record that the closed `credit_note` corrects this invoice. Refused
        (InvoiceError) unless the invoice is creditable and the credit note, with
        those before it, takes no more off it than its total, nor more net at any
        tax rate than the invoice has at that rate."""
        self.check_creditable()
        if not credit_note.is_credit_note or credit_note.corrects != self.id:
            raise InvoiceError(f"{credit_note.name} does not correct invoice {self.name}")
        if credit_note.number is None or not credit_note.is_closed:
            raise InvoiceError(f"credit note {credit_note.id} is not closed: it has no number")
        if credit_note.id in self.credits:
            raise InvoiceError(f"invoice {self.name} is already credited by {credit_note.name}")
        if credit_note.currency != self.currency:
            raise InvoiceError(
                f"{credit_note.name} is in {credit_note.currency}; invoice {self.name} is in "
                f"{self.currency}"
            )
        taken = -credit_note.total
        if taken <= 0:
            raise InvoiceError(
                f"{credit_note.name} totals {credit_note.currency} {credit_note.total}: a "
                "credit note takes a positive amount off an invoice"
            )
        if taken > self.creditable_total:
            raise InvoiceError(
                f"invoice {self.name}: a credit of {self.currency} {taken} would exceed its "
                f"total; {self.currency} {max(self.creditable_total, Decimal(0))} of "
                f"{self.total} remains creditable" + self._credited_by()
            )
        left = self.creditable_by_rate()
        amounts = []
        for rate, (net, tax) in sorted(credit_note.amounts_by_rate().items(), reverse=True):
            credited_net, credited_tax = -net, -tax
            left_net = left.get(rate, (Decimal(0), Decimal(0)))[0]
            if rate not in left or credited_net > left_net:
                raise InvoiceError(
                    f"invoice {self.name}: a credit of {self.currency} {credited_net} net at "
                    f"{rate.normalize():f} % would exceed what it billed at that rate; "
                    f"{self.currency} {max(left_net, Decimal(0))} net at that rate remains "
                    "creditable" + self._credited_by()
                )
            amounts.append(CreditedAmount(tax_rate=rate, amount=credited_net, tax=credited_tax))
        self._trigger(
            events.InvoiceCredited,
            at,
            run_id=self.run_id,
            credit_note_id=credit_note.id,
            credit_note_number=credit_note.number,
            reason=credit_note.credit_reason or "",
            amounts=tuple(amounts),
            total=taken,
        )

    def _credited_by(self) -> str:
        if not self.credits:
            return ""
        listed = ", ".join(
            f"{format_credit_note_number(c.credit_note_number)} {c.total}"
            for c in self.credits.values()
        )
        return f" (credited: {listed})"

    @property
    def withheld(self) -> bool:
        """Quarantined, rejected or cancelled: never delivered in this status."""
        return self.review_status in WITHHELD

    def record_rendering(
        self, document_format: str, sha256: str, location: str, size: int, at: datetime
    ) -> bool:
        """Record a rendered document; rendering a format twice records nothing (False).

        Renderers may not be byte-for-byte reproducible (a PDF carries its creation
        time), so the first document of each format is the invoice's document.
        """
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are rendered")
        if document_format in self.documents:
            return False
        self._trigger(
            events.InvoiceRendered,
            at,
            run_id=self.run_id,
            format=document_format,
            sha256=sha256,
            location=location,
            size=size,
        )
        return True

    def record_delivery(self, dispatch: Dispatch, at: datetime) -> bool:
        """Record that the invoice went out; a second delivery records nothing (False)."""
        if self.status is InvoiceStatus.OPEN:
            raise InvoiceError(f"invoice {self.id} is open: only closed invoices are delivered")
        if self.delivery is not None:
            return False
        if dispatch.channel != "none" and "pdf" not in self.documents:
            raise InvoiceError(f"invoice {self.id} has no PDF yet: render it before delivery")
        self._trigger(events.InvoiceDelivered, at, run_id=self.run_id, **dispatch.fields())
        return True

    @property
    def is_closed(self) -> bool:
        return self.status is InvoiceStatus.CLOSED

    @property
    def display_number(self) -> str | None:
        if self.printed_number is not None:
            return self.printed_number
        return (
            None if self.number is None else format_document_number(self.number, self.document_type)
        )
