"""Reviewing closed invoices: approve, quarantine, release from quarantine, reject
or cancel them, by id or by filter (a run, with a status and an account).

The invoice aggregate enforces the transitions (`domain.invoicing.review.REVIEW_TRANSITIONS`);
this applies one action to many invoices and reports, per invoice, whether it
changed, was already where the action leads (unchanged), or was refused and why.
Each invoice is saved on its own: one refusal or conflict never holds back the
others. A save that conflicts (the invoice changed since it was loaded: rendered,
delivered, reviewed by someone else) reloads it and tries once more, judging the
action against its new state.

Filters are resolved by the caller (`find`, which reads the invoices view: the
application does not import the read side); each invoice found is checked again
against the filter's status as loaded from its events, so an invoice that
changed status meanwhile is refused, not acted on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from application.receivables.withdrawals import withdraw_not_owed
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from domain.invoicing.documents import InvoiceStatus
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewAction, ReviewStatus
from domain.shared.errors import DomainError

LOAD_CHUNK = 500

STATUSES = tuple(s.value for s in InvoiceStatus) + tuple(s.value for s in ReviewStatus)
"""What a filter's status can be: a lifecycle status or a review status."""


@dataclass(frozen=True)
class InvoiceFilter:
    """The invoices of a run (opened or closed by it), optionally in one status
    (open, closed, or a review status) and of one account."""

    run_id: str
    status: str | None = None
    account_id: str | None = None

    def check(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ApplicationError(
                f"--status {self.status!r}: not a status; use one of {', '.join(STATUSES)}"
            )

    def matches(self, invoice: Invoice) -> bool:
        return self.status is None or self.status in (
            invoice.status.value,
            invoice.review_status.value if invoice.review_status else None,
        )


InvoiceFinder = Callable[[InvoiceFilter], Iterable[UUID]]
"""Finds the ids of the invoices a filter selects (the invoices view, caught up)."""


class ReviewResultKind(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    """Already where the action leads (approving an approved invoice): nothing recorded."""
    REFUSED = "refused"


@dataclass(frozen=True)
class ReviewResult:
    invoice_id: UUID
    invoice: str
    """The invoice's number (INV-...), or its id while it is open or unknown."""
    kind: ReviewResultKind
    review_status: str | None = None
    """The review status after the action (for a refusal: as it stands)."""
    reason: str | None = None
    """Why it was refused; otherwise the reason recorded with its review status (a
    quarantine's, a rejection's), so a filtered action shows what it recorded."""


@dataclass
class ReviewOutcome:
    action: ReviewAction
    results: list[ReviewResult] = field(default_factory=list)

    def _of(self, kind: ReviewResultKind) -> list[ReviewResult]:
        return [result for result in self.results if result.kind is kind]

    @property
    def changed(self) -> list[ReviewResult]:
        return self._of(ReviewResultKind.CHANGED)

    @property
    def unchanged(self) -> list[ReviewResult]:
        return self._of(ReviewResultKind.UNCHANGED)

    @property
    def refused(self) -> list[ReviewResult]:
        return self._of(ReviewResultKind.REFUSED)


def review(
    billing: Billing,
    action: ReviewAction,
    invoice_ids: Sequence[UUID] = (),
    selection: InvoiceFilter | None = None,
    find: InvoiceFinder | None = None,
    reason: str | None = None,
    at: datetime | None = None,
) -> ReviewOutcome:
    """Apply `action` to the invoices named by id, or to those `selection` finds.

    Refuses the whole request (nothing written) when it names no invoices and no
    filter, names both, has no reason for an action that needs one, or filters by
    an unknown status. Then each invoice is judged and saved on its own.
    """
    if invoice_ids and selection is not None:
        raise ApplicationError("name invoices by id or select them with --run, not both")
    if not invoice_ids and selection is None:
        raise ApplicationError("name the invoices by id (or number), or select them with --run")
    if action.needs_reason and not (reason and reason.strip()):
        raise ApplicationError(f"--reason is required to {action.value} invoices")
    if selection is not None:
        selection.check()
        if find is None:
            raise ApplicationError("selecting invoices by filter needs the invoices view")
        ids = list(dict.fromkeys(find(selection)))
    else:
        ids = list(dict.fromkeys(invoice_ids))
        # Named by hand, so few: a mistyped one refuses the request before anything changes.
        missing = set(ids) - set(billing.load_many(Invoice, ids))
        if missing:
            listed = ", ".join(str(i) for i in ids if i in missing)
            raise ApplicationError(f"no invoice {listed}: nothing changed")
    outcome = ReviewOutcome(action)
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        loaded = billing.load_many(Invoice, chunk)
        for invoice_id in chunk:
            invoice = loaded.get(invoice_id)
            if invoice is None:  # listed by the view, gone from the log: never expected
                outcome.results.append(
                    ReviewResult(
                        invoice_id, str(invoice_id), ReviewResultKind.REFUSED, None, "no invoice"
                    )
                )
                continue
            outcome.results.append(_review_one(billing, invoice, action, selection, reason, at))
    return outcome


def _review_one(
    billing: Billing,
    invoice: Invoice,
    action: ReviewAction,
    selection: InvoiceFilter | None,
    reason: str | None,
    at: datetime | None,
) -> ReviewResult:
    """Judge and save one invoice; a conflicting save reloads and tries once more."""
    for attempt in (1, 2):
        status = invoice.review_status.value if invoice.review_status else None
        if selection is not None and not selection.matches(invoice):
            now = status or invoice.status.value
            return _refused(invoice, f"no longer {selection.status} (it is {now})")
        instant = at or billing.clock()
        try:
            changed = invoice.review(action, reason, instant)
        except DomainError as error:
            return _refused(invoice, str(error))
        if not changed:
            return ReviewResult(
                invoice.id, invoice.name, ReviewResultKind.UNCHANGED, status, invoice.review_reason
            )
        try:
            billing.save(invoice, *withdraw_not_owed(billing, [invoice], instant))
        except RecordConflictError:
            invoice = billing.get_invoice(invoice.id)
            if attempt == 2:
                break
            continue
        status = invoice.review_status.value if invoice.review_status else None
        return ReviewResult(
            invoice.id, invoice.name, ReviewResultKind.CHANGED, status, invoice.review_reason
        )
    return _refused(
        invoice, "it changed while being saved, twice (someone else is working on it): try again"
    )


def _refused(invoice: Invoice, reason: str) -> ReviewResult:
    status = invoice.review_status.value if invoice.review_status else None
    return ReviewResult(invoice.id, invoice.name, ReviewResultKind.REFUSED, status, reason)
