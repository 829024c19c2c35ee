"""How a bill group's invoices close (its close type) and go out (its delivery
channel): the values its BillGroupConfigured event carries."""

from __future__ import annotations

from enum import StrEnum


class DeliveryChannel(StrEnum):
    EMAIL = "email"  # SMTP, the PDF attached
    FILE = "file"  # an .eml written to the outbox folder (the demo's default)
    NONE = "none"  # rendered, never sent


DEFAULT_CHANNEL = DeliveryChannel.FILE


class CloseType(StrEnum):
    """When an invoice of the group is closed (the seed's invoice close types)."""

    AFTER_EACH_BILL_RUN = "after_each_bill_run"
    """Once the run has billed everyone, every open invoice of the group is closed,
    including those of accounts that had nothing billed in the run."""
    POST_USER_BILLING = "post_user_billing"
    """An account's open invoice is closed as soon as the account has passed
    through billing: one invoice per cycle, carrying everything still open."""
    USER_BILL_CYCLE = "user_bill_cycle"
    """An account's open invoice is closed when it reaches its bill cycle (a
    package is due in the run), before billing; what is billed after that opens
    a new invoice, which stays open until a package is next due."""


DEFAULT_CLOSE_TYPE = CloseType.POST_USER_BILLING
