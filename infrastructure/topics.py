"""The frozen table of stored event topics.

An event is stored under a topic, and that topic is part of the log forever:
the mapper resolves it to rebuild the event, SQL filters select by it,
projections subscribe to it, the relay derives the NATS subject from it
(`subject_for`) and the audit seal hashes it. The library's default topic is
the class's `module:qualname`, so moving a class would silently change all of
that. Here each event class is pinned, by name, to the topic it was first
stored under (generated once from the code at 43dce88 and committed).

Rules:
- a new event class gets one entry: its name and its topic as it is now
  (`module:ClassName`), never changed afterwards;
- a class that moves keeps its entry; the mapper resolves the old topic to the
  class wherever it lives now (`register_topic`);
- `tests/unit/test_event_topics.py` fails for a class without an entry and
  says what to add.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from eventsourcing.utils import get_topic, register_topic

STORED_TOPICS: Final[Mapping[str, str]] = {
    # domain.account
    "AccountDetailsChanged": "domain.account:AccountDetailsChanged",
    "AccountOpened": "domain.account:AccountOpened",
    "BillDaySet": "domain.account:BillDaySet",
    "BuyerDetailsSet": "domain.billing.events:BuyerDetailsSet",
    "ChargeAdded": "domain.account:ChargeAdded",
    "ChargeBilled": "domain.account:ChargeBilled",
    "ContractAgreed": "domain.account:ContractAgreed",
    "ContractPenaltyApplied": "domain.account:ContractPenaltyApplied",
    "ContractTerminated": "domain.account:ContractTerminated",
    "HeldInvoicesReleased": "domain.account:HeldInvoicesReleased",
    "InvoiceHeld": "domain.account:InvoiceHeld",
    "InvoicerChanged": "domain.account:InvoicerChanged",
    "InvoicerMemberAdded": "domain.account:InvoicerMemberAdded",
    "InvoicerMemberRemoved": "domain.account:InvoicerMemberRemoved",
    "OpenInvoiceChanged": "domain.account:OpenInvoiceChanged",
    "PackageAmended": "domain.account:PackageAmended",
    "PackageBilled": "domain.account:PackageBilled",
    "PackageRevised": "domain.account:PackageRevised",
    "PackageSubscribed": "domain.account:PackageSubscribed",
    "RunBillingReopened": "domain.account:RunBillingReopened",
    "UsageBilled": "domain.account:UsageBilled",
    "UsageRecorded": "domain.account:UsageRecorded",
    "ZeroInvoiceIssued": "domain.account:ZeroInvoiceIssued",
    # domain.bill_group
    "BillGroupConfigured": "domain.bill_group:BillGroupConfigured",
    # domain.bill_run
    "AccountParked": "domain.bill_run:AccountParked",
    "ParkedAccountBilled": "domain.bill_run:ParkedAccountBilled",
    "RunBatchCompleted": "domain.bill_run:RunBatchCompleted",
    "RunCancelled": "domain.bill_run:RunCancelled",
    "RunClosingBatchCompleted": "domain.bill_run:RunClosingBatchCompleted",
    "RunClosingStarted": "domain.bill_run:RunClosingStarted",
    "RunCollectionBatchCompleted": "domain.bill_run:RunCollectionBatchCompleted",
    "RunCollectionStarted": "domain.bill_run:RunCollectionStarted",
    "RunCompleted": "domain.bill_run:RunCompleted",
    "RunDescribed": "domain.bill_run:RunDescribed",
    "RunDisabled": "domain.bill_run:RunDisabled",
    "RunEnabled": "domain.bill_run:RunEnabled",
    "RunFailed": "domain.bill_run:RunFailed",
    "RunFinalized": "domain.bill_run:RunFinalized",
    "RunLeaseReleased": "domain.bill_run:RunLeaseReleased",
    "RunLeased": "domain.bill_run:RunLeased",
    "RunPreviewed": "domain.bill_run:RunPreviewed",
    "RunRatesAdded": "domain.bill_run:RunRatesAdded",
    "RunResumed": "domain.bill_run:RunResumed",
    "RunScheduled": "domain.bill_run:RunScheduled",
    "RunStarted": "domain.bill_run:RunStarted",
    "RunValidated": "domain.bill_run:RunValidated",
    # domain.exchange_rates
    "BaseCurrencySet": "domain.exchange_rates:BaseCurrencySet",
    "ExchangeRateSet": "domain.exchange_rates:ExchangeRateSet",
    # domain.invoice
    "InvoiceApproved": "domain.invoice:InvoiceApproved",
    "InvoiceCancelled": "domain.invoice:InvoiceCancelled",
    "InvoiceClosed": "domain.invoice:InvoiceClosed",
    "InvoiceCredited": "domain.invoice:InvoiceCredited",
    "InvoiceDelivered": "domain.invoice:InvoiceDelivered",
    "InvoiceLineAdded": "domain.invoice:InvoiceLineAdded",
    "InvoiceOpened": "domain.invoice:InvoiceOpened",
    "InvoiceQuarantined": "domain.invoice:InvoiceQuarantined",
    "InvoiceRejected": "domain.invoice:InvoiceRejected",
    "InvoiceReleased": "domain.invoice:InvoiceReleased",
    "InvoiceReleasedFromQuarantine": "domain.invoice:InvoiceReleasedFromQuarantine",
    "InvoiceRendered": "domain.invoice:InvoiceRendered",
    "InvoiceRulesPassed": "domain.invoice:InvoiceRulesPassed",
    # domain.invoicing.entities
    "IssuingEntityConfigured": "domain.invoicing.events:IssuingEntityConfigured",
    # domain.invoice_numbers
    "InvoiceNumbersReserved": "domain.invoice_numbers:InvoiceNumbersReserved",
    # domain.receivables
    "AccountReinstated": "domain.receivables:AccountReinstated",
    "AccountSuspended": "domain.receivables:AccountSuspended",
    "AccountSuspendedByOperator": "domain.receivables.events:AccountSuspendedByOperator",
    "AutoPaySet": "domain.receivables:AutoPaySet",
    "CollectionAnswered": "domain.receivables:CollectionAnswered",
    "CollectionAttempted": "domain.receivables:CollectionAttempted",
    "CreditNotePosted": "domain.receivables:CreditNotePosted",
    "DunningApplied": "domain.receivables:DunningApplied",
    "DunningNoticeSent": "domain.receivables:DunningNoticeSent",
    "InvoicePosted": "domain.receivables:InvoicePosted",
    "InvoiceWithdrawn": "domain.receivables:InvoiceWithdrawn",
    "PaymentReceived": "domain.receivables:PaymentReceived",
    "PaymentTermsSet": "domain.receivables:PaymentTermsSet",
    "ReceivablesOpened": "domain.receivables:ReceivablesOpened",
    # domain.shared.idempotency (the HTTP API's; never published)
    "RequestAccepted": "domain.shared.idempotency:RequestAccepted",
    "ResponseRecorded": "domain.shared.idempotency:ResponseRecorded",
    # domain.schedule
    "ScheduleAdded": "domain.schedule:ScheduleAdded",
    "ScheduleRemoved": "domain.schedule:ScheduleRemoved",
}


class UnknownEventTopic(LookupError):
    """An event class that is not in the frozen topic table."""


def topic_of(event_class: type[Any]) -> str:
    """The topic `event_class` is stored, filtered, published and sealed under."""
    try:
        return STORED_TOPICS[event_class.__name__]
    except KeyError:
        raise UnknownEventTopic(
            f"{event_class.__name__} has no stored topic: add "
            f'"{event_class.__name__}": "{get_topic(event_class)}" to STORED_TOPICS '
            "in infrastructure/topics.py"
        ) from None


@cache
def event_classes_by_topic() -> Mapping[str, type[Any]]:
    """Every stored topic and the class that rebuilds its events today.

    A class that moved since its topic was frozen is registered with the
    library under its old topic too, so the library's own `resolve_topic`
    finds it.
    """
    from domain.catalogue import event_catalogue

    classes: dict[str, type[Any]] = {}
    for event_class in event_catalogue():
        topic = topic_of(event_class)
        if get_topic(event_class) != topic:
            register_topic(topic, event_class)
        classes[topic] = event_class
    return classes
