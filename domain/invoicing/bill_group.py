"""The BillGroup aggregate: how the invoices of a group of accounts go out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from domain.invoicing.review_rules import ReviewRules
from domain.receivables.dunning import DunningRules, SuspendedBilling
from domain.shared.errors import DomainError
from domain.shared.ids import bill_group_uuid
from domain.shared.model import Aggregate, DomainEvent


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


class BillGroupConfigured(DomainEvent):
    group_id: str
    delivery_channel: DeliveryChannel
    email_subject: str | None
    email_template: str | None
    """A jinja2 template for the email body; None: the built-in one."""
    first_invoice_email_template: str | None
    """The template for an account's first invoice (seed); None: `email_template`."""
    close_type: CloseType = DEFAULT_CLOSE_TYPE
    zero_invoices: bool = True
    """An account with an active package but nothing billed still gets an
    invoice (a zero one), so every cycle leaves a paper trail."""
    quarantine_above: Decimal | None = None
    """Review rule: quarantine an invoice whose total is above this (in its currency)."""
    reject_negative: bool = False
    """Review rule: reject an invoice whose total is negative."""
    quarantine_without_email: bool = False
    """Review rule: quarantine an invoice whose account has no invoice email."""
    payment_terms_days: int | None = None
    """Net days from an invoice's issue to its due date; None: 30 (an account's own
    terms come first)."""
    dunning: DunningRules = DunningRules()
    suspended_billing: SuspendedBilling = SuspendedBilling.BILL


class BillGroup(Aggregate):
    kind = "billgroup"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.group_id = ""
        self.delivery_channel = DEFAULT_CHANNEL
        self.email_subject: str | None = None
        self.email_template: str | None = None
        self.first_invoice_email_template: str | None = None
        self.close_type = DEFAULT_CLOSE_TYPE
        self.zero_invoices = True
        self.review_rules = ReviewRules()
        """Validation rules applied to the group's invoices when they close."""
        self.payment_terms_days: int | None = None
        self.dunning = DunningRules()
        self.suspended_billing = SuspendedBilling.BILL

    @classmethod
    def create(cls, group_id: str) -> BillGroup:
        if not group_id.strip():
            raise DomainError("a bill group needs a non-empty id")
        group = cls(bill_group_uuid(group_id))
        group.group_id = group_id
        return group

    def configure(
        self,
        delivery_channel: DeliveryChannel,
        email_subject: str | None,
        email_template: str | None,
        first_invoice_email_template: str | None,
        at: datetime,
        close_type: CloseType = DEFAULT_CLOSE_TYPE,
        zero_invoices: bool = True,
        quarantine_above: Decimal | None = None,
        reject_negative: bool = False,
        quarantine_without_email: bool = False,
        payment_terms_days: int | None = None,
        dunning: DunningRules | None = None,
        suspended_billing: SuspendedBilling = SuspendedBilling.BILL,
    ) -> None:
        """Set the group's delivery, invoicing, review, payment terms and dunning rules;
        the same settings again record nothing."""
        rules = ReviewRules.checked(quarantine_above, reject_negative, quarantine_without_email)
        dunning = dunning or DunningRules()
        if payment_terms_days is not None and not 0 <= payment_terms_days <= 365:
            raise DomainError(
                f"bill group {self.group_id}: payment terms are 0 to 365 days net, "
                f"not {payment_terms_days}"
            )
        settings = (
            delivery_channel,
            email_subject,
            email_template,
            first_invoice_email_template,
            close_type,
            zero_invoices,
            rules,
            payment_terms_days,
            dunning,
            suspended_billing,
        )
        current = (
            self.delivery_channel,
            self.email_subject,
            self.email_template,
            self.first_invoice_email_template,
            self.close_type,
            self.zero_invoices,
            self.review_rules,
            self.payment_terms_days,
            self.dunning,
            self.suspended_billing,
        )
        if self.version > 0 and settings == current:
            return
        self._trigger(
            BillGroupConfigured,
            at,
            group_id=self.group_id,
            delivery_channel=delivery_channel,
            email_subject=email_subject,
            email_template=email_template,
            first_invoice_email_template=first_invoice_email_template,
            close_type=close_type,
            zero_invoices=zero_invoices,
            quarantine_above=quarantine_above,
            reject_negative=reject_negative,
            quarantine_without_email=quarantine_without_email,
            payment_terms_days=payment_terms_days,
            dunning=dunning,
            suspended_billing=suspended_billing,
        )

    def _when_BillGroupConfigured(self, event: BillGroupConfigured) -> None:
        self.group_id = event.group_id
        self.delivery_channel = event.delivery_channel
        self.email_subject = event.email_subject
        self.email_template = event.email_template
        self.first_invoice_email_template = event.first_invoice_email_template
        self.close_type = event.close_type
        self.zero_invoices = event.zero_invoices
        self.review_rules = ReviewRules(
            quarantine_above=event.quarantine_above,
            reject_negative=event.reject_negative,
            quarantine_without_email=event.quarantine_without_email,
        )
        self.payment_terms_days = event.payment_terms_days
        self.dunning = event.dunning
        self.suspended_billing = event.suspended_billing
