"""Invoices: lines add up exactly, closing numbers them, and numbers have no gaps."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.billing.lines import InvoiceLine
from domain.invoicing.documents import InvoiceStatus
from domain.invoicing.events import (
    InvoiceClosed,
    InvoiceLineAdded,
    InvoiceNumbersReserved,
    InvoiceOpened,
)
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import InvoiceNumberSequence, format_invoice_number
from domain.shared.errors import DomainError, InvoiceError
from domain.shared.ids import INVOICE_NUMBER_SEQUENCE_ID, invoice_uuid

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
POSTING = date(2026, 3, 31)


def line(amount: str, currency: str = "EUR", source: str = "package:office") -> InvoiceLine:
    return InvoiceLine(
        line_id=uuid4(),
        account_id="ACME-001",
        run_id="2026-03",
        source=source,
        description="Office",
        service_period_start=date(2026, 3, 1),
        service_period_end=date(2026, 3, 31),
        quantity=Decimal(1),
        unit_amount=Decimal(amount),
        amount=Decimal(amount),
        currency=currency,
        posting_date=POSTING,
        rule="recurring:monthly:advance",
    )


def open_invoice(currency: str = "EUR", *amounts: str) -> Invoice:
    invoice = Invoice.open("2026-03", "ACME-001", currency, POSTING, AT)
    for amount in amounts:
        invoice.add_line(line(amount, currency), AT)
    return invoice


# -- Opening ---------------------------------------------------------------------


def test_an_invoice_is_identified_by_its_run_and_account():
    invoice = open_invoice()
    assert invoice.id == invoice_uuid("2026-03", "ACME-001")
    assert (invoice.run_id, invoice.account_id, invoice.currency, invoice.posting_date) == (
        "2026-03",
        "ACME-001",
        "EUR",
        POSTING,
    )
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.number is None
    assert invoice.display_number is None


def test_an_invoice_in_an_unknown_currency_is_refused():
    with pytest.raises(DomainError, match="XXX"):
        Invoice.open("2026-03", "ACME-001", "XXX", POSTING, AT)


# -- Lines add up ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amounts", "total"),
    [
        ("EUR", [], "0.00"),
        ("EUR", ["100.00"], "100.00"),
        ("EUR", ["100.00", "19.99", "0.01"], "120.00"),
        ("EUR", ["0.10"] * 10, "1.00"),
        ("EUR", ["100.00", "-25.50"], "74.50"),
        ("EUR", ["100", "0.5"], "100.50"),
        ("JPY", [], "0"),
        ("JPY", ["1200", "300"], "1500"),
        ("KWD", [], "0.000"),
        ("KWD", ["1.001", "2.000", "0.999"], "4.000"),
        ("CLF", ["0.0001", "2.5"], "2.5001"),
    ],
)
def test_a_closed_invoices_totals_are_the_sum_of_its_lines_at_the_minor_unit(
    currency, amounts, total
):
    invoice = open_invoice(currency, *amounts)
    invoice.close(1, LATER)
    assert str(invoice.subtotal) == total
    assert str(invoice.total) == total
    assert invoice.subtotal == sum((Decimal(a) for a in amounts), Decimal(0))
    assert invoice.total == invoice.subtotal + invoice.tax


@pytest.mark.parametrize(
    ("currency", "amounts", "subtotal", "tax"),
    [
        ("EUR", [], "0.00", "0.00"),
        ("EUR", ["100.00", "19.99"], "119.99", "0.00"),
        ("JPY", ["1200"], "1200", "0"),
        ("KWD", [], "0.000", "0.000"),
    ],
)
def test_an_open_invoice_keeps_running_totals_at_the_minor_unit(currency, amounts, subtotal, tax):
    invoice = open_invoice(currency, *amounts)
    assert (str(invoice.subtotal), str(invoice.tax), str(invoice.total)) == (
        subtotal,
        tax,
        subtotal,
    )


def test_the_closed_event_carries_the_number_and_the_totals():
    invoice = open_invoice("EUR", "100.00", "19.99")
    invoice.collect_events()
    invoice.close(42, LATER)
    [closed] = invoice.collect_events()
    assert isinstance(closed, InvoiceClosed)
    assert (closed.number, closed.subtotal, closed.tax, closed.total, closed.line_count) == (
        42,
        Decimal("119.99"),
        Decimal("0.00"),
        Decimal("119.99"),
        2,
    )
    assert closed.run_id == "2026-03"
    assert closed.timestamp == LATER


# -- Closing -------------------------------------------------------------------------


def test_closing_assigns_the_invoice_number():
    invoice = open_invoice("EUR", "100.00")
    invoice.close(42, LATER)
    assert invoice.status is InvoiceStatus.CLOSED
    assert invoice.number == 42
    assert invoice.display_number == "INV-00000042"


@pytest.mark.parametrize(("number", "printed"), [(1, "INV-00000001"), (12345678, "INV-12345678")])
def test_an_invoice_number_is_printed_with_eight_digits(number, printed):
    assert format_invoice_number(number) == printed


@pytest.mark.parametrize("number", [0, -1])
def test_invoice_numbers_start_at_one(number):
    invoice = open_invoice("EUR", "100.00")
    with pytest.raises(InvoiceError, match="start at 1"):
        invoice.close(number, LATER)
    assert invoice.status is InvoiceStatus.OPEN


# -- Refusals change nothing -----------------------------------------------------------


def closed_invoice() -> Invoice:
    invoice = open_invoice("EUR", "100.00")
    invoice.close(1, LATER)
    return invoice


def duplicate_line(invoice: Invoice) -> None:
    invoice.add_line(invoice.lines[0], LATER)


@pytest.mark.parametrize(
    ("make_invoice", "command", "refusal"),
    [
        pytest.param(
            closed_invoice,
            lambda invoice: invoice.add_line(line("1.00"), LATER),
            "is closed: lines cannot be added",
            id="a line after close",
        ),
        pytest.param(
            closed_invoice,
            lambda invoice: invoice.close(2, LATER),
            "already closed",
            id="closing twice",
        ),
        pytest.param(
            lambda: open_invoice("EUR", "100.00"),
            lambda invoice: invoice.add_line(line("1.00", "USD"), LATER),
            "is in EUR; line .* is in USD",
            id="a line in another currency",
        ),
        pytest.param(
            lambda: open_invoice("EUR", "100.00"),
            duplicate_line,
            "already has line",
            id="the same line twice",
        ),
        pytest.param(
            lambda: open_invoice("EUR", "100.00"),
            lambda invoice: invoice.add_line(line("0.005"), LATER),
            "more decimals than EUR allows",
            id="a line with more decimals than the currency allows",
        ),
        pytest.param(
            lambda: open_invoice("JPY", "100"),
            lambda invoice: invoice.add_line(line("0.5", "JPY"), LATER),
            "more decimals than JPY allows",
            id="a yen line with a fraction",
        ),
    ],
)
def test_a_refused_invoice_command_records_nothing_and_changes_nothing(
    make_invoice, command, refusal
):
    invoice = make_invoice()
    invoice.collect_events()
    before = (invoice.version, invoice.status, list(invoice.lines), invoice.number, invoice.total)
    with pytest.raises(InvoiceError, match=refusal):
        command(invoice)
    assert invoice.collect_events() == []
    assert (
        invoice.version,
        invoice.status,
        invoice.lines,
        invoice.number,
        invoice.total,
    ) == before


def test_an_invoice_rebuilt_from_its_events_has_the_same_state():
    invoice = open_invoice("EUR", "100.00", "19.99")
    invoice.close(7, LATER)
    events = invoice.collect_events()
    assert [type(e) for e in events] == [
        InvoiceOpened,
        InvoiceLineAdded,
        InvoiceLineAdded,
        InvoiceClosed,
    ]
    rebuilt = Invoice.project(None, events)
    assert rebuilt is not None
    assert vars(rebuilt) == vars(invoice)


# -- The invoice number sequence ---------------------------------------------------------


def test_the_sequence_reserves_contiguous_numbers_from_one():
    sequence = InvoiceNumberSequence()
    assert sequence.id == INVOICE_NUMBER_SEQUENCE_ID
    assert sequence.reserve(3, "run-a", AT) == [1, 2, 3]
    assert sequence.reserve(1, "run-a", AT) == [4]
    assert sequence.reserve(2, "run-b", AT) == [5, 6]
    assert sequence.last_number == 6
    events = sequence.collect_events()
    assert [(e.run_id, e.first, e.count) for e in events] == [
        ("run-a", 1, 3),
        ("run-a", 4, 1),
        ("run-b", 5, 2),
    ]


def test_reserving_no_numbers_records_nothing():
    sequence = InvoiceNumberSequence()
    assert sequence.reserve(0, "run-a", AT) == []
    assert sequence.collect_events() == []
    assert sequence.version == 0


def test_a_negative_reservation_is_refused():
    sequence = InvoiceNumberSequence()
    with pytest.raises(InvoiceError):
        sequence.reserve(-1, "run-a", AT)
    assert sequence.collect_events() == []


def test_a_sequence_rebuilt_from_its_events_continues_without_a_gap():
    sequence = InvoiceNumberSequence()
    sequence.reserve(3, "run-a", AT)
    sequence.reserve(2, "run-b", AT)
    rebuilt = InvoiceNumberSequence.project(None, sequence.collect_events())
    assert rebuilt is not None
    assert rebuilt.last_number == 5
    assert rebuilt.reserve(1, "run-c", AT) == [6]


@pytest.mark.parametrize(
    ("first", "problem"),
    [(5, "leaves a gap after 3"), (3, "leaves a gap after 3"), (1, "leaves a gap after 3")],
    ids=["skipping numbers", "reusing the last number", "starting over"],
)
def test_a_reservation_event_that_does_not_follow_the_last_number_is_refused(first, problem):
    sequence = InvoiceNumberSequence()
    sequence.reserve(3, "run-a", AT)
    stray = InvoiceNumbersReserved(
        originator_id=INVOICE_NUMBER_SEQUENCE_ID,
        originator_version=2,
        timestamp=LATER,
        run_id="run-b",
        first=first,
        count=2,
    )
    with pytest.raises(InvoiceError, match=problem):
        sequence.apply(stray)
    assert sequence.last_number == 3
    assert sequence.version == 1
