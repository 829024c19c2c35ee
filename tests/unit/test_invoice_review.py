"""Invoice review: the transitions the aggregate allows and refuses, the validation
rules applied when an invoice closes, and the delivery policy that follows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from application.billing.import_document import parse_import
from application.invoicing.delivery import ready_for_delivery
from application.shared.errors import InvalidInput
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.events import (
    BillGroupConfigured,
    InvoiceApproved,
    InvoiceCancelled,
    InvoiceQuarantined,
    InvoiceRejected,
    InvoiceReleasedFromQuarantine,
    InvoiceRulesPassed,
)
from domain.invoicing.group_terms import DeliveryChannel
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import REVIEW_TRANSITIONS, ReviewAction, ReviewStatus
from domain.invoicing.review_rules import ReviewRules, RuleAction, Verdict, decisive
from domain.runs.bill_run import BillRun
from domain.runs.settings import RunSettings, Selection
from domain.shared.dispatch import Dispatch
from domain.shared.errors import DomainError, InvoiceError
from domain.shared.model import DomainEvent
from domain.shared.periods import Period
from tests.unit.test_invoice import line

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
POSTING = date(2026, 3, 31)

A = ReviewAction
S = ReviewStatus

# How to bring a fresh draft to each review status (the shortest path).
PATHS: dict[ReviewStatus, list[ReviewAction]] = {
    S.DRAFT: [],
    S.APPROVED: [A.APPROVE],
    S.QUARANTINED: [A.QUARANTINE],
    S.REJECTED: [A.REJECT],
    S.CANCELLED: [A.CANCEL],
}

ALLOWED: list[tuple[ReviewStatus, ReviewAction, ReviewStatus, type[DomainEvent]]] = [
    (S.DRAFT, A.APPROVE, S.APPROVED, InvoiceApproved),
    (S.DRAFT, A.QUARANTINE, S.QUARANTINED, InvoiceQuarantined),
    (S.DRAFT, A.REJECT, S.REJECTED, InvoiceRejected),
    (S.DRAFT, A.CANCEL, S.CANCELLED, InvoiceCancelled),
    (S.QUARANTINED, A.UNQUARANTINE, S.DRAFT, InvoiceReleasedFromQuarantine),
    (S.QUARANTINED, A.REJECT, S.REJECTED, InvoiceRejected),
    (S.QUARANTINED, A.CANCEL, S.CANCELLED, InvoiceCancelled),
]

ALREADY = [
    (S.APPROVED, A.APPROVE),
    (S.QUARANTINED, A.QUARANTINE),
    (S.REJECTED, A.REJECT),
    (S.CANCELLED, A.CANCEL),
]

# Every other (status, action) pair is refused, with what the message must say.
REFUSED: list[tuple[ReviewStatus, ReviewAction, str]] = [
    (S.DRAFT, A.UNQUARANTINE, "a draft invoice can only: approve, quarantine, reject, cancel"),
    (S.QUARANTINED, A.APPROVE, "a quarantined invoice can only: unquarantine, reject, cancel"),
    (S.APPROVED, A.QUARANTINE, "approved invoices are final"),
    (S.APPROVED, A.UNQUARANTINE, "approved invoices are final"),
    (S.APPROVED, A.REJECT, "approved invoices are final: correct one with a new document"),
    (S.APPROVED, A.CANCEL, "approved invoices are final: correct one with a new document"),
    (S.REJECTED, A.APPROVE, "rejected invoices are final"),
    (S.REJECTED, A.QUARANTINE, "rejected invoices are final"),
    (S.REJECTED, A.UNQUARANTINE, "rejected invoices are final"),
    (S.REJECTED, A.CANCEL, "rejected invoices are final"),
    (S.CANCELLED, A.APPROVE, "cancelled invoices are final"),
    (S.CANCELLED, A.QUARANTINE, "cancelled invoices are final"),
    (S.CANCELLED, A.UNQUARANTINE, "cancelled invoices are final"),
    (S.CANCELLED, A.REJECT, "cancelled invoices are final"),
]


def closed_invoice(*amounts: str, number: int = 7) -> Invoice:
    invoice = Invoice.open("2026-03", "ACME-001", "EUR", POSTING, AT)
    for amount in amounts or ("100.00",):
        invoice.add_line(line(amount), AT)
    invoice.close(number, AT)
    return invoice


def invoice_with_history(status: ReviewStatus) -> tuple[Invoice, list[DomainEvent]]:
    """A closed invoice brought to `status`, and the events that got it there."""
    invoice = closed_invoice()
    for action in PATHS[status]:
        assert invoice.review(action, "because", AT)
    history = invoice.collect_events()
    assert invoice.review_status is status
    return invoice, history


def invoice_in(status: ReviewStatus) -> Invoice:
    return invoice_with_history(status)[0]


def test_the_tables_cover_every_status_and_action_once() -> None:
    pairs = [(s, a) for s, a, _, _ in ALLOWED] + ALREADY + [(s, a) for s, a, _ in REFUSED]
    assert sorted(pairs) == sorted((s, a) for s in ReviewStatus for a in ReviewAction)
    assert len(pairs) == len(set(pairs))
    assert {(s, a) for s, a, _, _ in ALLOWED} == {
        (s, a) for s, moves in REVIEW_TRANSITIONS.items() for a in moves
    }


def test_an_open_invoice_has_no_review_status_and_a_closed_one_starts_as_a_draft() -> None:
    invoice = Invoice.open("2026-03", "ACME-001", "EUR", POSTING, AT)
    assert invoice.review_status is None
    with pytest.raises(InvoiceError, match="is open: only closed invoices are reviewed"):
        invoice.approve(AT)
    invoice.close(1, AT)
    assert invoice.review_status is ReviewStatus.DRAFT


@pytest.mark.parametrize(("start", "action", "end", "event"), ALLOWED)
def test_allowed_transitions(
    start: ReviewStatus, action: ReviewAction, end: ReviewStatus, event: type[DomainEvent]
) -> None:
    invoice, history = invoice_with_history(start)

    assert invoice.review(action, "checked by hand", AT) is True

    assert invoice.review_status is end
    [recorded] = invoice.collect_events()
    assert type(recorded) is event
    assert invoice.review_reason == "checked by hand"
    assert invoice.review_rule is None  # an operator's, not a rule's
    stored = type(recorded).model_validate(recorded.model_dump(mode="json"))
    rebuilt = Invoice.project(None, [*history, stored])
    assert rebuilt is not None
    assert (rebuilt.review_status, rebuilt.review_reason) == (end, "checked by hand")


@pytest.mark.parametrize(("status", "action"), ALREADY)
def test_an_action_that_leads_where_the_invoice_is_records_nothing(
    status: ReviewStatus, action: ReviewAction
) -> None:
    invoice = invoice_in(status)
    assert invoice.review(action, "again", AT) is False
    assert invoice.collect_events() == []
    assert invoice.review_status is status


@pytest.mark.parametrize(("status", "action", "says"), REFUSED)
def test_refused_transitions_say_which_invoice_its_status_and_what_is_allowed(
    status: ReviewStatus, action: ReviewAction, says: str
) -> None:
    invoice = invoice_in(status)
    version = invoice.version

    with pytest.raises(InvoiceError) as refused:
        invoice.review(action, "a reason", AT)

    message = str(refused.value)
    assert message.startswith(f"invoice INV-00000007 is {status.value}: it cannot be ")
    assert action.past in message
    assert says in message
    assert invoice.version == version and invoice.collect_events() == []
    assert invoice.review_status is status


@pytest.mark.parametrize("action", [A.QUARANTINE, A.REJECT, A.CANCEL])
@pytest.mark.parametrize("reason", [None, "", "   "])
def test_quarantine_reject_and_cancel_need_a_reason(
    action: ReviewAction, reason: str | None
) -> None:
    invoice = invoice_in(S.DRAFT)
    with pytest.raises(InvoiceError, match=f"a reason is needed to {action.value} it"):
        invoice.review(action, reason, AT)
    assert invoice.collect_events() == []


def test_approving_and_releasing_need_no_reason() -> None:
    invoice = invoice_in(S.QUARANTINED)
    assert invoice.release_from_quarantine(AT)
    assert invoice.approve(AT)
    assert invoice.review_status is S.APPROVED and invoice.review_reason is None


@pytest.mark.parametrize("action", [A.QUARANTINE, A.REJECT, A.CANCEL])
def test_a_delivered_draft_is_issued_and_can_no_longer_be_withheld(action: ReviewAction) -> None:
    invoice = closed_invoice()
    invoice.record_rendering("pdf", "0" * 64, "00/x.pdf", 10, AT)
    invoice.record_delivery(Dispatch("file", "ap@example.test", "<m@billrun>", "x.eml"), AT)
    with pytest.raises(InvoiceError, match="was delivered on 2026-04-01: it is issued"):
        invoice.review(action, "too late", AT)
    assert invoice.approve(AT)  # approving what went out (the LogiSense flow) is harmless


# -- Rules ------------------------------------------------------------------------


def evaluate(rules: ReviewRules, total: str, email: str | None = "ap@example.test") -> list:
    return rules.evaluate(Decimal(total), "EUR", "ACME-001", email)


def test_no_rules_no_verdicts() -> None:
    assert not ReviewRules().enabled
    assert evaluate(ReviewRules(), "-5.00", None) == []


@pytest.mark.parametrize(
    ("total", "action", "reason"),
    [
        (
            "1000.01",
            RuleAction.QUARANTINE,
            "total 1000.01 EUR is above the threshold of 1000.00 EUR",
        ),
        ("1000.00", RuleAction.PASS, "total 1000.00 EUR is not above the threshold of 1000.00 EUR"),
        ("12.00", RuleAction.PASS, "total 12.00 EUR is not above the threshold of 1000.00 EUR"),
    ],
)
def test_the_threshold_quarantines_a_total_above_it(
    total: str, action: RuleAction, reason: str
) -> None:
    rules = ReviewRules(quarantine_above=Decimal("1000.00"))
    assert evaluate(rules, total) == [
        Verdict(rule="quarantine_above", action=action, reason=reason)
    ]


@pytest.mark.parametrize(
    ("total", "action", "reason"),
    [
        ("-0.01", RuleAction.REJECT, "total -0.01 EUR is negative"),
        ("0.00", RuleAction.PASS, "total 0.00 EUR is not negative"),
        ("5.00", RuleAction.PASS, "total 5.00 EUR is not negative"),
    ],
)
def test_a_negative_total_is_rejected(total: str, action: RuleAction, reason: str) -> None:
    rules = ReviewRules(reject_negative=True)
    assert evaluate(rules, total) == [Verdict(rule="reject_negative", action=action, reason=reason)]


@pytest.mark.parametrize(
    ("email", "action", "reason"),
    [
        (None, RuleAction.QUARANTINE, "account ACME-001 has no invoice email"),
        ("", RuleAction.QUARANTINE, "account ACME-001 has no invoice email"),
        ("ap@example.test", RuleAction.PASS, "account ACME-001 has invoice email ap@example.test"),
    ],
)
def test_no_invoice_email_quarantines(email: str | None, action: RuleAction, reason: str) -> None:
    rules = ReviewRules(quarantine_without_email=True)
    assert evaluate(rules, "5.00", email) == [
        Verdict(rule="quarantine_without_email", action=action, reason=reason)
    ]


ALL_RULES = ReviewRules(
    quarantine_above=Decimal("50"), reject_negative=True, quarantine_without_email=True
)


def test_every_rule_gives_a_verdict_most_severe_first_and_the_first_objection_decides() -> None:
    verdicts = evaluate(ALL_RULES, "-80.00", None)
    assert [(v.rule, v.action) for v in verdicts] == [
        ("reject_negative", RuleAction.REJECT),
        ("quarantine_above", RuleAction.PASS),
        ("quarantine_without_email", RuleAction.QUARANTINE),
    ]
    assert decisive(verdicts) == verdicts[0]
    assert decisive(evaluate(ALL_RULES, "10.00")) is None


@pytest.mark.parametrize(
    ("amounts", "email", "status", "event", "rule"),
    [
        (("-80.00",), None, S.REJECTED, InvoiceRejected, "reject_negative"),
        (("80.00",), "ap@example.test", S.QUARANTINED, InvoiceQuarantined, "quarantine_above"),
        (("10.00",), None, S.QUARANTINED, InvoiceQuarantined, "quarantine_without_email"),
        (("10.00",), "ap@example.test", S.DRAFT, InvoiceRulesPassed, None),
    ],
)
def test_the_verdicts_are_recorded_on_the_closed_invoice(
    amounts: tuple[str, ...],
    email: str | None,
    status: ReviewStatus,
    event: type[DomainEvent],
    rule: str | None,
) -> None:
    invoice = closed_invoice(*amounts)
    invoice.collect_events()
    verdicts = ALL_RULES.evaluate(invoice.total, invoice.currency, "ACME-001", email)

    invoice.record_verdicts(verdicts, AT)

    [recorded] = invoice.collect_events()
    assert type(recorded) is event
    assert invoice.review_status is status
    assert invoice.review_rule == rule
    assert invoice.verdicts == tuple(verdicts) and len(verdicts) == 3
    if rule is not None:
        assert invoice.review_reason == next(v.reason for v in verdicts if v.rule == rule)
    # The stored form (JSON) rebuilds the same verdicts.
    again = type(recorded).model_validate(recorded.model_dump(mode="json"))
    assert again == recorded


def test_verdicts_are_recorded_once_and_only_on_a_draft() -> None:
    invoice = closed_invoice()
    invoice.record_verdicts(evaluate(ALL_RULES, "10.00"), AT)
    with pytest.raises(InvoiceError, match="rules are applied once"):
        invoice.record_verdicts(evaluate(ALL_RULES, "10.00"), AT)
    fresh = closed_invoice()  # no rules, no verdicts: nothing recorded
    fresh.collect_events()
    fresh.record_verdicts([], AT)
    assert fresh.collect_events() == []


def test_a_rule_quarantined_invoice_can_be_released_and_approved() -> None:
    invoice = closed_invoice("80.00")
    invoice.record_verdicts(evaluate(ALL_RULES, "80.00"), AT)
    assert invoice.review_status is S.QUARANTINED
    invoice.release_from_quarantine(AT, "the customer confirmed the order")
    invoice.approve(AT)
    assert invoice.review_status is S.APPROVED
    assert len(invoice.verdicts) == 3  # what the rules said stays on record


# -- Bill group settings -------------------------------------------------------------


def test_a_bill_group_records_its_rules_and_the_same_again_records_nothing() -> None:
    group = BillGroup.create("big")
    group.configure(DeliveryChannel.FILE, None, None, None, AT, quarantine_above=Decimal("1000"),
                    reject_negative=True)  # fmt: skip
    [event] = group.collect_events()
    assert isinstance(event, BillGroupConfigured)
    assert (event.quarantine_above, event.reject_negative, event.quarantine_without_email) == (
        Decimal("1000"), True, False,
    )  # fmt: skip
    assert group.review_rules == ReviewRules(quarantine_above=Decimal("1000"), reject_negative=True)
    group.configure(DeliveryChannel.FILE, None, None, None, AT,
                    quarantine_above=Decimal("1000.00"), reject_negative=True)  # fmt: skip
    assert group.collect_events() == []


def test_a_group_configured_before_rules_existed_has_none() -> None:
    stored = {
        "originator_id": BillGroup.create("old").id,
        "originator_version": 1,
        "timestamp": AT,
        "group_id": "old",
        "delivery_channel": "file",
        "email_subject": None,
        "email_template": None,
        "first_invoice_email_template": None,
    }
    group = BillGroup.project(None, [BillGroupConfigured.model_validate(stored)])
    assert group is not None and not group.review_rules.enabled


@pytest.mark.parametrize("threshold", ["-1", "NaN", "Infinity"])
def test_a_threshold_must_be_a_non_negative_amount(threshold: str) -> None:
    group = BillGroup.create("big")
    with pytest.raises(DomainError, match="quarantine_above must be a non-negative amount"):
        group.configure(DeliveryChannel.FILE, None, None, None, AT,
                        quarantine_above=Decimal(threshold))  # fmt: skip
    assert group.collect_events() == []


# -- Delivery policy ------------------------------------------------------------------


def rendered(status: ReviewStatus) -> Invoice:
    invoice = invoice_in(status)
    invoice.record_rendering("pdf", "0" * 64, "00/x.pdf", 10, AT)
    return invoice


def run(approval_required: bool) -> BillRun:
    return BillRun.schedule(
        "2026-03",
        Period(date(2026, 3, 1), date(2026, 3, 31)),
        None,
        Selection(),
        AT,
        RunSettings(approval_required=approval_required),
    )


@pytest.mark.parametrize(
    ("status", "approval_required", "reason"),
    [
        (S.DRAFT, False, None),
        (S.APPROVED, False, None),
        (S.APPROVED, True, None),
        (S.DRAFT, True, "run 2026-03 requires approval: the invoice is draft, not approved"),
        (S.QUARANTINED, False, "the invoice is quarantined: it is not delivered"),
        (S.REJECTED, False, "the invoice is rejected: it is not delivered"),
        (S.CANCELLED, True, "the invoice is cancelled: it is not delivered"),
    ],
)
def test_delivery_waits_for_approval_when_the_run_says_so_and_never_sends_withheld_invoices(
    status: ReviewStatus, approval_required: bool, reason: str | None
) -> None:
    readiness = ready_for_delivery(rendered(status), run(approval_required))
    assert bool(readiness) is (reason is None)
    assert readiness.reason == reason


# -- The import file -------------------------------------------------------------------


def test_the_import_file_sets_a_groups_rules_and_refuses_a_bad_threshold() -> None:
    raw = {"bill_groups": [{"id": "key", "quarantine_above": "5000.00", "reject_negative": True}]}
    [group] = parse_import(json.dumps(raw).encode(), "f.json").bill_groups
    assert (group.quarantine_above, group.reject_negative, group.quarantine_without_email) == (
        Decimal("5000.00"),
        True,
        False,
    )
    bad = {
        "bill_groups": [{"id": "key", "quarantine_above": "-1"}, {"id": "b", "quarantine_above": 5}]
    }
    with pytest.raises(InvalidInput) as refused:
        parse_import(json.dumps(bad).encode(), "f.json")
    assert [problem.path for problem in refused.value.problems] == [
        "bill_groups[0].quarantine_above",
        "bill_groups[1].quarantine_above",
    ]
