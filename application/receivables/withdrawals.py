"""Keeping an account's receivables in step with its invoices' review.

A closed invoice is posted to its account's receivables as it closes
(`application.invoicing.invoices.close_numbered`); when an operator (or a cancelled run)
rejects or cancels it, it is no longer owed: it is withdrawn in the same
transaction as the review event, and what was paid on it goes to the account's
other open invoices or its credit balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from application.shared.app import Billing
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.receivables.receivables import Receivables, receivables_uuid

NOT_OWED = (ReviewStatus.REJECTED, ReviewStatus.CANCELLED)


def withdraw_not_owed(
    billing: Billing, invoices: Iterable[Invoice], at: datetime
) -> list[Receivables]:
    """Withdraw the rejected or cancelled `invoices` from their accounts' receivables
    (loaded in one query); returns the receivables that changed, to save with them."""
    withdrawn = [i for i in invoices if i.review_status in NOT_OWED]
    if not withdrawn:
        return []
    ids = list(dict.fromkeys(receivables_uuid(i.account_id) for i in withdrawn))
    by_account = {r.account_id: r for r in billing.load_many(Receivables, ids).values()}
    for invoice in withdrawn:
        receivables = by_account.get(invoice.account_id)
        if receivables is not None:
            reason = f"invoice {invoice.name} {invoice.review_status}: {invoice.review_reason}"
            receivables.withdraw_invoice(invoice.id, reason, at)
    return [r for r in by_account.values() if r.has_pending_events]
