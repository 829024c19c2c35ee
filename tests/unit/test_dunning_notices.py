"""Composing a dunning notice without a database: the built-in templates, a
stage's own template, and a broken or unsafe one refused before anything is sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from application.receivables.dunning_notices import (
    DunningNotice,
    compose_notice,
    dunning_message_id,
    ready_for_notice,
)
from application.shared.messages import DeliveryRefused
from application.shared.ports import Seller
from domain.receivables.dunning import DunningRules, DunningStage
from domain.receivables.events import DunningApplied
from domain.receivables.receivables import Receivables
from infrastructure.rendering.renderer import EmailTemplates

INVOICE = UUID("0b5a4a52-9f0e-4d6b-9a64-3b0b1c1e7a10")
AT = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
DUE = date(2026, 3, 2)

NOTICE = DunningNotice(
    invoice_id=INVOICE,
    number="INV-00000012",
    stage=2,
    rule="standard",
    run_id="2026-03",
    days_overdue=15,
    issue_date=date(2026, 1, 31),
    due_date=date(2026, 3, 2),
    currency="EUR",
    invoice_amount=Decimal("1210.00"),
    overdue_amount=Decimal("1210.00"),
    fee=None,
    suspends=False,
    template=None,
    account_id="ACME-001",
    account_name="Acme Ltd",
    recipient="ap@acme.test",
    group_id="monthly",
)


def compose(notice: DunningNotice = NOTICE) -> str:
    message = compose_notice(notice, EmailTemplates(), Seller(), AT)
    return str(message.get_content())


def test_the_notice_is_a_payment_reminder_with_a_fixed_message_id_to_the_invoice_email() -> None:
    message = compose_notice(NOTICE, EmailTemplates(), Seller(), AT)

    assert message["Subject"] == "Payment reminder: invoice INV-00000012 is 15 days overdue"
    assert message["Message-ID"] == f"<dunning-{INVOICE}-2@billrun>"
    assert message["Message-ID"] == dunning_message_id(INVOICE, 2)
    assert message["To"] == "Acme Ltd <ap@acme.test>"
    assert message["From"] == "Billrun Demo Ltd <billing@billrun.example>"
    assert message["X-Billrun-Invoice"] == "INV-00000012"
    assert message["X-Billrun-Dunning-Stage"] == "2"


def test_the_built_in_notice_states_the_amount_overdue_the_due_date_and_the_days() -> None:
    body = compose()

    assert body.startswith("Dear Acme Ltd,")
    assert "is 15 days overdue" in body
    assert "Amount overdue: EUR 1,210.00" in body
    assert "Due date:       2 March 2026" in body
    assert "BE71 0961 2345 6769" in body  # where to pay
    assert "Late fee" not in body
    assert "suspended" not in body


def test_the_built_in_notice_names_the_late_fee_and_the_suspension_when_the_stage_has_them() -> (
    None
):
    body = compose(replace(NOTICE, fee=Decimal("15.00"), suspends=True))

    assert "Late fee:       EUR 15.00, charged on your next invoice" in body
    assert "Your account is suspended until the overdue invoices are paid." in body


def test_one_day_overdue_is_said_in_the_singular() -> None:
    message = compose_notice(replace(NOTICE, days_overdue=1), EmailTemplates(), Seller(), AT)

    assert message["Subject"] == "Payment reminder: invoice INV-00000012 is 1 day overdue"


def test_a_stages_own_template_is_the_body_with_the_notice_names() -> None:
    template = (
        "{{ account_name }}: {{ number }}, {{ currency }} {{ overdue_amount }} since "
        "{{ due_date | long_date }} ({{ days_overdue }} days, stage {{ stage }}), "
        "fee {{ fee }}"
    )

    body = compose(replace(NOTICE, template=template, fee=Decimal("12.10")))

    assert body.strip() == (
        "Acme Ltd: INV-00000012, EUR 1,210.00 since 2 March 2026 (15 days, stage 2), fee 12.10"
    )


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ no_such_name }}", "'no_such_name' is undefined"),
        ("{% if %}", "cannot be rendered"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ],
)
def test_a_broken_or_unsafe_stage_template_is_refused_saying_which_notice_and_why(
    source: str, problem: str
) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        compose(replace(NOTICE, template=source))

    assert problem in str(refused.value)
    assert str(refused.value).startswith(
        "dunning notice of invoice INV-00000012 (stage 2): bill group 'monthly', rule 'standard'"
    )


# Whether a notice is still due --------------------------------------------------


def overdue_receivables(*days: int) -> Receivables:
    """Receivables with one 100.00 EUR invoice due 2026-03-02, dunned on each of
    `days` after the due date."""
    receivables = Receivables.open("ACME-001", "EUR", AT)
    receivables.post_invoice(
        INVOICE, "INV-00000012", date(2026, 1, 31), date(2026, 3, 2), Decimal("100.00"), AT
    )
    rules = DunningRules.checked(
        "standard",
        [DunningStage(days_overdue=15, notify=True), DunningStage(days_overdue=30, suspend=True)],
    )
    for day in days:
        receivables.run_dunning(f"run-{day}", rules, DUE + timedelta(days=day), AT)
    return receivables


def applied_stage(receivables: Receivables, stage: int) -> DunningApplied:
    return next(
        event
        for event in receivables.collect_events()
        if isinstance(event, DunningApplied) and event.stage == stage
    )


def test_a_notice_is_due_for_an_open_invoice_at_its_latest_stage_that_notifies() -> None:
    receivables = overdue_receivables(15)
    applied = applied_stage(receivables, 1)

    assert ready_for_notice(receivables, applied, INVOICE, 1)


def test_no_notice_is_due_once_the_invoice_is_paid_or_a_later_stage_was_applied() -> None:
    paid = overdue_receivables(15)
    applied = applied_stage(paid, 1)
    paid.receive_payment("p-1", Decimal("100.00"), date(2026, 3, 18), AT)
    later = overdue_receivables(15, 30)
    silent = overdue_receivables(30)

    assert ready_for_notice(paid, applied, INVOICE, 1).reason == (
        "invoice INV-00000012: the invoice is paid"
    )
    assert ready_for_notice(later, applied, INVOICE, 1).reason == (
        "invoice INV-00000012: dunning stage 2 was applied to it since"
    )
    assert ready_for_notice(silent, applied_stage(silent, 2), INVOICE, 2).reason == (
        "invoice INV-00000012: dunning stage 2 does not notify"
    )
