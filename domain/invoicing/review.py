"""The review's state machine: where a closed invoice stands (draft, approved,
quarantined, rejected, cancelled), what an operator may do, and where it leads.
The Invoice aggregate enforces it; docs/review.md explains it."""

from __future__ import annotations

from enum import StrEnum


class ReviewStatus(StrEnum):
    """Where a closed invoice stands in review (an open invoice has none).

    draft -> approved (final; delivered means issued)
    draft -> quarantined -> draft (released from quarantine)
    draft or quarantined -> rejected or cancelled (final)
    """

    DRAFT = "draft"
    APPROVED = "approved"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class ReviewAction(StrEnum):
    """What an operator can do to a closed invoice in review."""

    APPROVE = "approve"
    QUARANTINE = "quarantine"
    UNQUARANTINE = "unquarantine"
    """Release from quarantine: back to draft."""
    REJECT = "reject"
    CANCEL = "cancel"

    @property
    def past(self) -> str:
        return _PAST[self]

    @property
    def needs_reason(self) -> bool:
        return self in (ReviewAction.QUARANTINE, ReviewAction.REJECT, ReviewAction.CANCEL)


_PAST = {
    ReviewAction.APPROVE: "approved",
    ReviewAction.QUARANTINE: "quarantined",
    ReviewAction.UNQUARANTINE: "released from quarantine",
    ReviewAction.REJECT: "rejected",
    ReviewAction.CANCEL: "cancelled",
}


REVIEW_TRANSITIONS: dict[ReviewStatus, dict[ReviewAction, ReviewStatus]] = {
    ReviewStatus.DRAFT: {
        ReviewAction.APPROVE: ReviewStatus.APPROVED,
        ReviewAction.QUARANTINE: ReviewStatus.QUARANTINED,
        ReviewAction.REJECT: ReviewStatus.REJECTED,
        ReviewAction.CANCEL: ReviewStatus.CANCELLED,
    },
    ReviewStatus.QUARANTINED: {
        ReviewAction.UNQUARANTINE: ReviewStatus.DRAFT,
        ReviewAction.REJECT: ReviewStatus.REJECTED,
        ReviewAction.CANCEL: ReviewStatus.CANCELLED,
    },
    ReviewStatus.APPROVED: {},
    ReviewStatus.REJECTED: {},
    ReviewStatus.CANCELLED: {},
}
"""The review's state machine: from a status, each allowed action and where it leads.
Approved, rejected and cancelled are final."""


_TARGETS = {
    ReviewAction.APPROVE: ReviewStatus.APPROVED,
    ReviewAction.QUARANTINE: ReviewStatus.QUARANTINED,
    ReviewAction.UNQUARANTINE: ReviewStatus.DRAFT,
    ReviewAction.REJECT: ReviewStatus.REJECTED,
    ReviewAction.CANCEL: ReviewStatus.CANCELLED,
}
"""Where each action leads: an invoice already there is left as it is."""


WITHHELD = frozenset({ReviewStatus.QUARANTINED, ReviewStatus.REJECTED, ReviewStatus.CANCELLED})
"""Review statuses in which an invoice is never delivered."""
