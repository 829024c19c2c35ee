"""The BillGroup aggregate: how the invoices of a group of accounts go out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain.invoicing.events import BillGroupConfigured
from domain.invoicing.group_terms import (
    DEFAULT_CHANNEL,
    DEFAULT_CLOSE_TYPE,
    CloseType,
    DeliveryChannel,
)
from domain.invoicing.review_rules import ReviewRules
from domain.receivables.dunning import DunningRules, SuspendedBilling
from domain.shared.errors import DomainError
from domain.shared.ids import bill_group_uuid
from domain.shared.model import Aggregate


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
        self.issuing_entity: str | None = None
        """Who bills the group; None: the default entity."""

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
        issuing_entity: str | None = None,
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
            issuing_entity,
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
            self.issuing_entity,
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
            issuing_entity=issuing_entity,
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
        self.issuing_entity = event.issuing_entity
