"""Issuing credit notes: `billrun invoice credit`.

One transaction saves the credit note (opened, its lines, closed with its
number, approved), the credit note number sequence (its own, gapless: a
refused or conflicting attempt consumes no number), the corrected invoice
(`InvoiceCredited`: what is left creditable) and the account's receivables
(`CreditNotePosted`: the credit pays what is open on the corrected invoice
first, then the account's other open invoices, then becomes credit balance).

The credit note then closes like any invoice, so the render consumer renders
it on its `InvoiceClosed` and the deliver consumer delivers it on its PDF's
`InvoiceRendered`, under the settings of the run that governs the invoice it
corrects.

Issuing is idempotent: the credit note's id is derived from the invoice and a
key (the operator's `--id`, or one derived from the terms), so the same request
again finds the credit note it issued and writes nothing. A save that conflicts
(someone else changed the invoice, the sequence or the receivables meanwhile)
reloads everything and tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.retrying import SAVE_ATTEMPTS
from domain.invoicing.credit_notes import (
    CreditTerms,
    credit_key,
    issue_credit_note,
    resolve_terms,
    same_terms,
)
from domain.invoicing.documents import DocumentType
from domain.invoicing.entities import sequence_id
from domain.invoicing.entity_details import DEFAULT_ENTITY
from domain.invoicing.invoice import Invoice
from domain.receivables.receivables import Receivables
from domain.shared.ids import credit_note_uuid


class CreditRefused(ApplicationError):
    """The credit note cannot be issued; nothing was written."""


@dataclass(frozen=True)
class CreditOutcome:
    credit_note: Invoice
    invoice: Invoice
    """The corrected invoice, as it stands after the credit."""
    created: bool
    """False: the same credit was issued before (same key); nothing was written."""
    receivables: Receivables | None
    """The account's receivables after the credit was posted."""

    @property
    def amount(self) -> Decimal:
        """What the credit note takes off the invoice, tax included (positive)."""
        return -self.credit_note.total


def credit_invoice(
    billing: Billing,
    invoice_id: UUID,
    terms: CreditTerms,
    key: str | None = None,
) -> CreditOutcome:
    """Issue a credit note correcting the issued invoice `invoice_id` by `terms`.

    `key` names the credit note among the invoice's (default: derived from the
    terms, so the very same credit asked twice is issued once; give one to issue
    two equal credits). Raises InvoiceNotFound, or CreditRefused / InvoiceError
    saying why, writing nothing.
    """
    if key is not None and not key.strip():
        raise CreditRefused("--id: a credit note key cannot be empty")
    for _attempt in range(SAVE_ATTEMPTS):
        invoice = billing.get_invoice(invoice_id)
        resolved = resolve_terms(invoice, terms)
        credit_note_id = credit_note_uuid(invoice.id, key.strip() if key else credit_key(resolved))
        issued = billing.load_many(Invoice, [credit_note_id]).get(credit_note_id)
        if issued is not None:
            return _issued_before(billing, invoice, issued, resolved, key)
        invoice.check_creditable()
        receivables = billing.find_receivables(invoice.account_id)
        if receivables is None or invoice.id not in receivables.items:
            raise CreditRefused(
                f"invoice {invoice.name} is not posted to account {invoice.account_id}'s "
                "receivables (it closed before receivables were kept): a credit note is "
                "posted against the invoice it corrects"
            )
        at = billing.clock()
        issued_on = at.date()
        # The credit note is numbered by the invoice's issuing entity's own
        # credit-note sequence (the default entity's: CN-00000001, ...).
        entity_id = invoice.issued_by or DEFAULT_ENTITY
        sequence = billing.get_sequence(sequence_id(entity_id, DocumentType.CREDIT_NOTE))
        run_id = invoice.released_by_run or invoice.closed_by_run or invoice.run_id
        (number,) = sequence.reserve(1, run_id, at)
        printed = (
            None
            if invoice.issued_by is None
            else billing.get_entity(invoice.issued_by).number(
                number, DocumentType.CREDIT_NOTE, issued_on.year
            )
        )
        note = issue_credit_note(invoice, credit_note_id, resolved, number, issued_on, at, printed)
        assert note.display_number is not None
        receivables.post_credit_note(
            note.id, note.display_number, invoice.id, -note.total, issued_on, at
        )
        try:
            billing.save(note, invoice, sequence, receivables)
        except RecordConflictError:
            continue  # reload: the credit may now be issued, or numbered otherwise
        return CreditOutcome(note, invoice, True, receivables)
    raise CreditRefused(
        f"invoice {invoice_id} kept changing while the credit note was issued "
        f"({SAVE_ATTEMPTS} attempts); nothing was written: try again"
    )


def _issued_before(
    billing: Billing, invoice: Invoice, note: Invoice, terms: CreditTerms, key: str | None
) -> CreditOutcome:
    if not same_terms(note, terms):
        named = f"--id {key!r}" if key else "these terms"
        raise CreditRefused(
            f"{named} already issued credit note {note.name} for invoice {invoice.name} "
            f"({note.currency} {note.total}, {note.credit_reason!r}) with other terms: give "
            "another --id for another credit"
        )
    return CreditOutcome(note, invoice, False, billing.find_receivables(invoice.account_id))
