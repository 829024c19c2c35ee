"""Invoice review against real PostgreSQL: rules applied when a run closes invoices,
actions by filter with what changed and what was refused, approval gating of
delivery (the file channel), and the optimistic concurrency of each save."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.invoicing.delivery import OutcomeKind
from application.invoicing.review import InvoiceFilter, ReviewOutcome, ReviewResultKind, review
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from domain.invoicing.events import (
    InvoiceDelivered,
    InvoiceQuarantined,
    InvoiceRejected,
    InvoiceRulesPassed,
)
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewAction, ReviewStatus
from domain.invoicing.review_rules import RuleAction
from domain.runs.settings import RunSettings, Selection
from domain.shared.ids import invoice_uuid
from domain.shared.periods import Period
from entrypoints.runtime import Runtime
from infrastructure.messaging import StreamNames
from infrastructure.settings import Settings
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import EventLog, FileDeliveryWorld
from tests.integration.test_consumers import event_count, work_until

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
FEBRUARY = Period(date(2026, 2, 1), date(2026, 2, 28))

GROUPS = [
    {
        "id": "strict",
        "delivery": "file",
        "quarantine_above": "500.00",
        "reject_negative": True,
        "quarantine_without_email": True,
    },
    {"id": "plain", "delivery": "file"},
    {"id": "cycle", "delivery": "file", "close_type": "user_bill_cycle"},
]


def credit(amount: str) -> dict[str, Any]:
    return {"id": "goodwill", "description": "Goodwill", "amount": amount, "date": "2026-01-10"}


STRICT_ACCOUNTS = [
    account("BIG", package("office", "900.00"), bill_group="strict"),
    account("CREDIT", package("office", "50.00"), bill_group="strict")
    | {"charges": [credit("-80.00")]},
    account("NOMAIL", package("office", "100.00"), bill_group="strict", email=None),
    account("FINE", package("office", "100.00"), bill_group="strict"),
]


class World(FileDeliveryWorld):
    """Billing, rendering and delivery by the file channel, and the invoices view."""

    def import_accounts(self, *accounts: dict[str, Any]) -> None:
        raw = json.dumps({"bill_groups": GROUPS, "accounts": list(accounts)}).encode()
        importing.import_accounts(self.billing, parse_import(raw, "test.json"), "test.json")

    def bill(self, run_id: str, period: Period = JANUARY, approval_required: bool = False) -> None:
        settings = RunSettings(approval_required=approval_required)
        schedule_run(self.billing, run_id, period, None, Selection(), settings)
        BillRunExecutor(self.billing, batch_size=3).execute(run_id)

    def find(self, selection: InvoiceFilter) -> list[UUID]:
        rows = self.read_side.fresh_invoices().search(
            run_id=selection.run_id, account_id=selection.account_id, status=selection.status
        )
        return [row.id for row in rows]

    def review(
        self, action: ReviewAction, run_id: str, reason: str | None = None, **filters: Any
    ) -> ReviewOutcome:
        return review(
            self.billing,
            action,
            selection=InvoiceFilter(run_id, **filters),
            find=self.find,
            reason=reason,
        )

    def listed(self, run_id: str, status: str) -> list[str]:
        rows = self.read_side.fresh_invoices().search(run_id=run_id, status=status)
        return sorted(row.account for row in rows)


@pytest.fixture
def world(billing: Billing, es_env: dict[str, str], tmp_path: Path) -> Iterator[World]:
    opened = World(billing, es_env, tmp_path)
    yield opened
    opened.read_side.close()


def invoice_of(world: World, run_id: str, account_id: str) -> Invoice:
    return world.billing.get_invoice(invoice_uuid(run_id, account_id))


# Rules when a run closes invoices --------------------------------------------------


def test_a_run_whose_group_has_rules_quarantines_and_rejects_with_reasons(
    world: World, log: EventLog
) -> None:
    world.import_accounts(
        *STRICT_ACCOUNTS, account("OTHER", package("office", "9000.00"), bill_group="plain")
    )

    world.bill("2026-01")

    big, neg, nomail, fine, other = (
        invoice_of(world, "2026-01", a) for a in ("BIG", "CREDIT", "NOMAIL", "FINE", "OTHER")
    )
    assert (big.review_status, big.review_rule) == (ReviewStatus.QUARANTINED, "quarantine_above")
    assert big.review_reason == "total 900.00 EUR is above the threshold of 500.00 EUR"
    assert (neg.review_status, neg.review_rule) == (ReviewStatus.REJECTED, "reject_negative")
    assert neg.review_reason == "total -30.00 EUR is negative"
    assert (nomail.review_status, nomail.review_rule) == (
        ReviewStatus.QUARANTINED,
        "quarantine_without_email",
    )
    assert nomail.review_reason == "account NOMAIL has no invoice email"
    assert (fine.review_status, fine.review_reason) == (ReviewStatus.DRAFT, None)
    assert [v.action for v in fine.verdicts] == [RuleAction.PASS] * 3
    # Every rule's verdict is recorded, passing or not.
    assert [(v.rule, v.action) for v in neg.verdicts] == [
        ("reject_negative", RuleAction.REJECT),
        ("quarantine_above", RuleAction.PASS),
        ("quarantine_without_email", RuleAction.PASS),
    ]
    # A group without rules records no verdict at all.
    assert (other.review_status, other.verdicts) == (ReviewStatus.DRAFT, ())
    assert (log.count(InvoiceQuarantined), log.count(InvoiceRejected)) == (2, 1)
    assert log.count(InvoiceRulesPassed) == 1

    # The invoices view filters by review status.
    assert world.listed("2026-01", "quarantined") == ["BIG", "NOMAIL"]
    assert world.listed("2026-01", "rejected") == ["CREDIT"]
    assert world.listed("2026-01", "draft") == ["FINE", "OTHER"]
    assert len(world.listed("2026-01", "closed")) == 5


# Actions by filter ------------------------------------------------------------------


def test_actions_by_filter_count_what_changed_and_what_was_refused_and_why(
    world: World,
) -> None:
    world.import_accounts(*STRICT_ACCOUNTS)
    world.bill("2026-01")

    approved = world.review(ReviewAction.APPROVE, "2026-01")

    assert [r.invoice for r in approved.changed] == [invoice_of(world, "2026-01", "FINE").name]
    refused = {r.invoice_id: r.reason for r in approved.refused}
    assert len(refused) == 3 and not approved.unchanged
    big = invoice_of(world, "2026-01", "BIG")
    assert refused[big.id] == (
        f"invoice {big.name} is quarantined: it cannot be approved; a quarantined invoice "
        "can only: unquarantine, reject, cancel"
    )
    assert "rejected invoices are final" in refused[invoice_uuid("2026-01", "CREDIT")]
    assert world.listed("2026-01", "approved") == ["FINE"]

    rejected = world.review(
        ReviewAction.REJECT, "2026-01", reason="over budget", status="quarantined"
    )
    assert (len(rejected.changed), len(rejected.refused)) == (2, 0)
    assert invoice_of(world, "2026-01", "NOMAIL").review_reason == "over budget"
    assert world.listed("2026-01", "rejected") == ["BIG", "CREDIT", "NOMAIL"]

    # Again: the approved one is left as it is, the rejected ones are refused.
    again = world.review(ReviewAction.APPROVE, "2026-01")
    assert (len(again.changed), len(again.unchanged), len(again.refused)) == (0, 1, 3)

    only = world.review(ReviewAction.CANCEL, "2026-01", reason="x", account_id="FINE")
    [result] = only.refused
    assert "approved invoices are final: correct one with a new document" in (result.reason or "")


def test_requests_that_cannot_be_judged_are_refused_whole(world: World, log: EventLog) -> None:
    world.import_accounts(*STRICT_ACCOUNTS)
    world.bill("2026-01")
    head = world.billing.queries.head()

    with pytest.raises(ApplicationError, match="--reason is required to reject"):
        world.review(ReviewAction.REJECT, "2026-01")
    with pytest.raises(ApplicationError, match="--status 'lost': not a status"):
        world.review(ReviewAction.APPROVE, "2026-01", status="lost")
    ghost = invoice_uuid("2026-01", "NOBODY")
    fine = invoice_uuid("2026-01", "FINE")
    with pytest.raises(ApplicationError, match=f"no invoice {ghost}: nothing changed"):
        review(world.billing, ReviewAction.APPROVE, [fine, ghost])
    with pytest.raises(ApplicationError, match="by id or select them with --run, not both"):
        review(world.billing, ReviewAction.APPROVE, [fine], InvoiceFilter("2026-01"))

    assert world.billing.queries.head() == head


def test_an_open_invoice_is_refused(world: World) -> None:
    world.import_accounts(account("LATER", package("office", "10.00"), bill_group="cycle"))
    world.bill("2026-01")  # user_bill_cycle: the invoice stays open until the next cycle
    invoice_id = invoice_uuid("2026-01", "LATER")

    outcome = world.review(ReviewAction.APPROVE, "2026-01", status="open")

    [result] = outcome.refused
    assert result.invoice_id == invoice_id and result.review_status is None
    assert result.reason == f"invoice {invoice_id} is open: only closed invoices are reviewed"


# Concurrency -------------------------------------------------------------------------


class ConflictOnce:
    """Wraps `billing.save`: before the first save, another process changes the same
    invoice (by `meanwhile`), so that save conflicts."""

    def __init__(self, billing: Billing, es_env: dict[str, str], meanwhile: Any) -> None:
        self.billing = billing
        self.other = Billing(es_env, clock=billing.clock)
        self.meanwhile = meanwhile
        self.original = billing.save
        self.saves = 0

    def __call__(self, *objs: Any, **kwargs: Any) -> Any:
        self.saves += 1
        if self.saves == 1:
            for obj in objs:
                self.meanwhile(self.other, obj.id)
        return self.original(*objs, **kwargs)


def test_a_conflicting_save_reloads_and_tries_again(
    world: World, es_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01")
    fine = invoice_uuid("2026-01", "FINE")

    def render_meanwhile(other: Billing, invoice_id: UUID) -> None:
        invoice = other.get_invoice(invoice_id)
        invoice.record_rendering("pdf", "0" * 64, "00/x.pdf", 1, other.clock())
        other.save(invoice)

    conflict = ConflictOnce(world.billing, es_env, render_meanwhile)
    monkeypatch.setattr(world.billing, "save", conflict)
    try:
        outcome = review(world.billing, ReviewAction.APPROVE, [fine])
    finally:
        conflict.other.close()

    assert [r.kind for r in outcome.results] == [ReviewResultKind.CHANGED]
    assert conflict.saves == 2
    invoice = world.billing.get_invoice(fine)
    assert invoice.review_status is ReviewStatus.APPROVED and "pdf" in invoice.documents


def test_a_conflict_with_another_review_judges_the_action_again(
    world: World, es_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01")
    fine = invoice_uuid("2026-01", "FINE")

    def reject_meanwhile(other: Billing, invoice_id: UUID) -> None:
        invoice = other.get_invoice(invoice_id)
        invoice.reject("duplicate", other.clock())
        other.save(invoice)

    conflict = ConflictOnce(world.billing, es_env, reject_meanwhile)
    monkeypatch.setattr(world.billing, "save", conflict)
    try:
        outcome = review(world.billing, ReviewAction.APPROVE, [fine])
    finally:
        conflict.other.close()

    [result] = outcome.refused
    assert result.review_status == "rejected"
    assert "is rejected: it cannot be approved" in (result.reason or "")
    assert world.billing.get_invoice(fine).review_status is ReviewStatus.REJECTED


# Delivery --------------------------------------------------------------------------


def test_with_approval_required_an_invoice_waits_for_approval_then_goes_out(
    world: World, log: EventLog
) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01", approval_required=True)
    invoice_id = invoice_uuid("2026-01", "FINE")
    world.documents.render(invoice_id)

    waiting = world.delivery.deliver(invoice_id)

    assert waiting.kind is OutcomeKind.SKIPPED
    assert waiting.reason == "run 2026-01 requires approval: the invoice is draft, not approved"
    assert not world.outbox.exists() or not list(world.outbox.iterdir())

    review(world.billing, ReviewAction.APPROVE, [invoice_id])
    delivered = world.delivery.deliver(invoice_id)

    assert delivered.kind is OutcomeKind.DELIVERED
    assert len(list(world.outbox.glob("*.eml"))) == 1
    # The consumer of InvoiceApproved calls the same command: a repeat sends nothing.
    assert world.delivery.deliver(invoice_id).kind is OutcomeKind.ALREADY_DELIVERED
    assert log.count(InvoiceDelivered) == 1


def test_without_approval_required_a_draft_goes_out_once_rendered(world: World) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01")
    invoice_id = invoice_uuid("2026-01", "FINE")
    world.documents.render(invoice_id)

    assert world.delivery.deliver(invoice_id).kind is OutcomeKind.DELIVERED


@pytest.mark.parametrize("approval_required", [False, True])
def test_a_cancelled_invoice_is_never_delivered(
    world: World, log: EventLog, approval_required: bool
) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01", approval_required=approval_required)
    invoice_id = invoice_uuid("2026-01", "FINE")
    review(world.billing, ReviewAction.CANCEL, [invoice_id], reason="ordered by mistake")
    world.documents.render(invoice_id)

    outcome = world.delivery.deliver(invoice_id)

    assert outcome.kind is OutcomeKind.SKIPPED
    assert outcome.reason == "the invoice is cancelled: it is not delivered"
    refused = review(world.billing, ReviewAction.APPROVE, [invoice_id])
    assert "cancelled invoices are final" in (refused.refused[0].reason or "")
    assert world.delivery.deliver(invoice_id).kind is OutcomeKind.SKIPPED
    assert log.count(InvoiceDelivered) == 0


def test_a_quarantined_invoice_waits_until_released(world: World) -> None:
    world.import_accounts(account("NOMAIL", package("office", "10.00"), bill_group="strict",
                                  email=None))  # fmt: skip
    world.bill("2026-01")
    invoice_id = invoice_uuid("2026-01", "NOMAIL")
    world.documents.render(invoice_id)

    assert world.delivery.deliver(invoice_id).reason == (
        "the invoice is quarantined: it is not delivered"
    )
    review(world.billing, ReviewAction.UNQUARANTINE, [invoice_id])
    assert world.delivery.deliver(invoice_id).kind is OutcomeKind.DELIVERED


def test_a_rejected_invoice_does_not_count_as_the_accounts_first(world: World) -> None:
    world.import_accounts(account("FINE", package("office", "100.00"), bill_group="plain"))
    world.bill("2026-01")
    world.bill("2026-02", FEBRUARY)
    january, february = invoice_uuid("2026-01", "FINE"), invoice_uuid("2026-02", "FINE")
    review(world.billing, ReviewAction.REJECT, [january], reason="wrong price")
    world.documents.render(february)

    outcome = world.delivery.deliver(february)

    assert outcome.kind is OutcomeKind.DELIVERED and outcome.first_invoice is True


# The worker ------------------------------------------------------------------------


def test_the_worker_delivers_an_invoice_of_a_run_requiring_approval_once_approved(
    billing: Billing,
    es_env: dict[str, str],
    database_url: str,
    nats_server: str,
    streams: StreamNames,
    tmp_path: Path,
) -> None:
    runtime = Runtime(
        Settings(database_url=database_url, nats_url=nats_server, home=tmp_path, batch_size=100),
        es_env,
        billing,
    )
    import_accounts(billing, account("A", package()), account("B", package()))
    settings = RunSettings(approval_required=True)
    schedule_run(billing, "2026-01", JANUARY, None, Selection(), settings)
    BillRunExecutor(billing, batch_size=10).execute("2026-01")

    asyncio.run(
        work_until(
            runtime, nats_server, streams, lambda: event_count(billing, "InvoiceRendered") == 4
        )
    )
    assert event_count(billing, "InvoiceDelivered") == 0  # rendered, waiting for approval

    review(billing, ReviewAction.APPROVE, [invoice_uuid("2026-01", "A")])
    asyncio.run(
        work_until(
            runtime, nats_server, streams, lambda: event_count(billing, "InvoiceDelivered") == 1
        )
    )
    assert event_count(billing, "InvoiceDelivered") == 1
    assert billing.get_invoice(invoice_uuid("2026-01", "A")).delivery is not None
    assert billing.get_invoice(invoice_uuid("2026-01", "B")).delivery is None
