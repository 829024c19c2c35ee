"""Credit notes: an issued invoice corrected in full or in part by a document of its
own, never for more than the invoice, exactly to the minor unit. Pure domain."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.billing.lines import InvoiceLine, LineKind
from domain.billing.pricing import tax_on
from domain.invoicing.credit_notes import (
    CreditTerms,
    credit_key,
    issue_credit_note,
    resolve_terms,
    same_terms,
)
from domain.invoicing.documents import DocumentType
from domain.invoicing.events import InvoiceApproved, InvoiceClosed, InvoiceCredited, InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import format_document_number
from domain.invoicing.review import ReviewStatus
from domain.shared.dispatch import Dispatch
from domain.shared.errors import InvoiceError
from domain.shared.ids import credit_note_uuid, invoice_uuid

AT = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
POSTING = date(2026, 3, 31)
ISSUED = date(2026, 4, 20)
D = Decimal


def line(
    amount: str, rate: str = "21", currency: str = "EUR", unit: str | None = None
) -> InvoiceLine:
    return InvoiceLine(
        line_id=uuid4(),
        account_id="ACME-001",
        run_id="2026-03",
        source="package:office",
        description="Office",
        service_period_start=date(2026, 3, 1),
        service_period_end=date(2026, 3, 31),
        quantity=D(1),
        unit_amount=D(unit or amount),
        amount=D(amount),
        currency=currency,
        posting_date=POSTING,
        rule="recurring:monthly:advance",
        kind=LineKind.RECURRING,
        tax_rate=D(rate),
        tax=tax_on(D(amount), D(rate), currency),
    )


def issued(*lines: InvoiceLine, currency: str = "EUR", approve: bool = True) -> Invoice:
    """A closed invoice (number 7) of `lines`, approved unless told otherwise."""
    invoice = Invoice.open("2026-03", "ACME-001", currency, POSTING, AT)
    for item in lines:
        invoice.add_line(item, AT)
    invoice.close(7, AT, due_date=date(2026, 4, 30))
    if approve:
        invoice.approve(AT)
    invoice.collect_events()
    return invoice


def credit(invoice: Invoice, number: int = 1, key: str | None = None, **terms: object) -> Invoice:
    resolved = resolve_terms(invoice, CreditTerms(**terms))
    note_id = credit_note_uuid(invoice.id, key or credit_key(resolved))
    return issue_credit_note(invoice, note_id, resolved, number, ISSUED, LATER)


def full(reason: str = "ordered by mistake") -> dict[str, object]:
    return {"reason": reason}


def part(amount: str, rate: str | None = None, reason: str = "outage") -> dict[str, object]:
    return {"reason": reason, "amount": D(amount), "tax_rate": None if rate is None else D(rate)}


# Full and partial -----------------------------------------------------------------


def test_a_full_credit_negates_every_line_and_totals_minus_the_invoice() -> None:
    invoice = issued(line("100.00"), line("45.50", "6"), line("-10.00"))
    note = credit(invoice, **full())

    assert note.is_credit_note and note.corrects == invoice.id
    assert note.display_number == "CN-00000001"
    assert [(x.amount, x.unit_amount, x.tax, x.tax_rate) for x in note.lines] == [
        (-x.amount, -x.unit_amount, -x.tax, x.tax_rate) for x in invoice.lines
    ]
    assert (note.subtotal, note.tax, note.total) == (
        -invoice.subtotal,
        -invoice.tax,
        -invoice.total,
    )
    assert note.total == sum(x.amount + x.tax for x in note.lines)
    assert invoice.creditable_total == D("0.00")


def test_a_credit_note_closes_approved_released_and_under_the_invoices_run() -> None:
    invoice = issued(line("100.00"))
    note = credit(invoice, **full())
    events = note.collect_events()

    assert isinstance(events[0], InvoiceOpened)
    assert (
        isinstance(events[-2], InvoiceClosed)
        and events[-2].document_type is DocumentType.CREDIT_NOTE
    )
    assert events[-2].due_date is None
    assert isinstance(events[-1], InvoiceApproved)
    assert (note.review_status, note.released, note.run_id) == (
        ReviewStatus.APPROVED, True, invoice.run_id,
    )  # fmt: skip
    assert (note.posting_date, note.credit_reason, note.corrects_number) == (
        ISSUED, "ordered by mistake", 7,
    )  # fmt: skip
    (recorded,) = invoice.collect_events()
    assert isinstance(recorded, InvoiceCredited)
    assert (recorded.credit_note_id, recorded.credit_note_number, recorded.total) == (
        note.id, 1, D("121.00"),
    )  # fmt: skip


def test_a_partial_credit_is_one_negative_line_at_the_invoices_rate_taxed_by_the_one_rule() -> None:
    invoice = issued(line("100.00"), line("33.33"))
    note = credit(invoice, **part("10.05"))

    (only,) = note.lines
    assert (only.amount, only.unit_amount, only.quantity) == (D("-10.05"), D("-10.05"), D(1))
    assert (only.tax_rate, only.tax) == (D(21), D("-2.11"))  # 2.1105 rounds half up
    assert (only.kind, only.category, only.description) == (LineKind.CHARGE, "credits", "outage")
    assert note.total == D("-12.16")
    assert invoice.creditable_total == invoice.total - D("12.16")


def test_an_invoice_with_several_rates_needs_the_rate_of_a_partial_credit() -> None:
    invoice = issued(line("100.00"), line("50.00", "6"))
    with pytest.raises(InvoiceError, match=r"several tax rates \(21 %, 6 %\).*--tax-rate"):
        credit(invoice, **part("10.00"))
    with pytest.raises(InvoiceError, match="no line at 12 %; its rates: 21 %, 6 %"):
        credit(invoice, **part("10.00", "12"))

    note = credit(invoice, **part("10.00", "6.0"))
    assert [(x.tax_rate, x.tax) for x in note.lines] == [(D(6), D("-0.60"))]


def test_partial_credits_of_all_a_rate_add_up_to_the_invoice_exactly() -> None:
    # Three lines of 0.03 at 50 %: the rate's tax is 0.09 x 50 % = 0.045, rounded
    # once to 0.05 (BR-CO-17; per line it was 0.02 x 3 = 0.06). Crediting 0.04
    # (tax 0.02), then the last 0.05 (tax 0.025 -> 0.03): 0.14 in all, the invoice.
    invoice = issued(line("0.03", "50"), line("0.03", "50"), line("0.03", "50"))
    assert invoice.tax == D("0.05")
    first = credit(invoice, 1, **part("0.04"))
    last = credit(invoice, 2, **part("0.05"))

    assert (first.tax, last.tax) == (D("-0.02"), D("-0.03"))
    assert first.total + last.total == -invoice.total == D("-0.14")
    assert invoice.creditable_total == D("0.00")


# Never more than the invoice ----------------------------------------------------------


def test_a_credit_above_what_remains_creditable_is_refused_saying_what_remains() -> None:
    invoice = issued(line("100.00"))  # 121.00
    credit(invoice, 1, **part("60.00"))  # 72.60
    invoice.collect_events()

    with pytest.raises(
        InvoiceError,
        match=r"EUR 48.40 of 121.00 remains creditable \(credited: CN-00000001 72.60\)",
    ):
        credit(invoice, 2, **part("40.01"))
    with pytest.raises(InvoiceError, match="would exceed its total"):
        credit(invoice, 2, **full())
    assert invoice.collect_events() == []
    assert credit(invoice, 2, **part("40.00")).total == D("-48.40")
    assert invoice.creditable_total == D("0.00")


def test_a_partial_credit_cannot_take_more_net_at_a_rate_than_the_invoice_billed_at_it() -> None:
    invoice = issued(line("100.00"), line("20.00", "0"))  # 121.00 + 20.00
    with pytest.raises(InvoiceError, match=r"EUR 20.00 net at that rate remains creditable"):
        credit(invoice, **part("50.00", "0"))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=9_999), min_size=1, max_size=4),
    st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=8),
)
def test_however_credits_are_split_they_never_exceed_the_invoice_and_can_reach_it_exactly(
    cents: list[int], asked: list[int]
) -> None:
    invoice = issued(*(line(str(D(c) / 100)) for c in cents))
    credited = D(0)
    for number, amount in enumerate(asked, start=1):
        try:
            note = credit(invoice, number, key=str(number), **part(str(D(amount) / 100)))
        except InvoiceError:
            continue
        credited -= note.total
        assert credited <= invoice.total
    assert credited == invoice.credited_total
    left_net, _ = invoice.creditable_by_rate()[D(21)]
    if left_net > 0:
        credit(invoice, 99, key="rest", **part(str(left_net)))
    assert invoice.creditable_total == D("0.00")


# What can be credited -------------------------------------------------------------------


def test_a_draft_is_not_credited_but_cancelled() -> None:
    invoice = issued(line("100.00"), approve=False)
    with pytest.raises(InvoiceError, match=r"INV-00000007 is draft.*not credited but cancelled"):
        credit(invoice, **full())
    assert invoice.collect_events() == []


@pytest.mark.parametrize(
    ("review", "refusal"),
    [
        (lambda i: i.quarantine("check", AT), "is quarantined.*not credited but cancelled"),
        (lambda i: i.reject("wrong", AT), "is rejected: it was never issued"),
        (lambda i: i.cancel("dup", AT), "is cancelled: it was never issued"),
    ],
)
def test_a_withheld_invoice_is_never_credited(review, refusal) -> None:
    invoice = issued(line("100.00"), approve=False)
    review(invoice)
    with pytest.raises(InvoiceError, match=refusal):
        credit(invoice, **full())


def test_a_draft_that_went_out_is_issued_and_can_be_credited() -> None:
    invoice = issued(line("100.00"), approve=False)
    invoice.record_rendering("pdf", "0" * 64, "00/x.pdf", 1, AT)
    invoice.record_delivery(Dispatch("none", None, "<m>", None), AT)
    assert credit(invoice, **full()).total == D("-121.00")


def test_an_open_a_held_or_a_non_positive_invoice_and_a_credit_note_are_not_credited() -> None:
    still_open = Invoice.open("2026-03", "ACME-001", "EUR", POSTING, AT)
    with pytest.raises(InvoiceError, match="is open"):
        still_open.check_creditable()

    held = Invoice.open("2026-03", "HELD", "EUR", POSTING, AT)
    held.add_line(line("100.00"), AT)
    held.close(8, AT, release=False)
    held.approve(AT)
    with pytest.raises(InvoiceError, match="held until a run reaches"):
        held.check_creditable()

    negative = issued(line("-5.00"))
    with pytest.raises(InvoiceError, match="only an invoice with a positive total"):
        credit(negative, **full())

    note = credit(issued(line("100.00")), **full())
    with pytest.raises(InvoiceError, match="CN-00000001 is a credit note: only invoices"):
        credit(note, 2, **full())


@pytest.mark.parametrize(
    ("terms", "refusal"),
    [
        (part("10.005"), "not an amount of EUR"),
        (part("0"), "a credit is a positive net amount"),
        (part("-5.00"), "a credit is a positive net amount"),
        (part("10.00", reason="  "), "needs a reason"),
        (full(" "), "needs a reason"),
    ],
)
def test_bad_terms_are_refused_and_nothing_is_recorded(terms, refusal) -> None:
    invoice = issued(line("100.00"))
    with pytest.raises(InvoiceError, match=refusal):
        credit(invoice, **terms)
    assert invoice.collect_events() == []


# The same credit twice ---------------------------------------------------------------------


def test_the_same_terms_give_the_same_key_whatever_their_spelling() -> None:
    invoice = issued(line("100.00"))

    def key(**terms: object) -> str:
        return credit_key(resolve_terms(invoice, CreditTerms(**terms)))

    assert key(**part("50")) == key(**part("50.00", "21.0")) == "amount:50.00:21:outage"
    assert key(**part("50", reason="  outage ")) == key(**part("50"))
    assert key(**part("50", reason="other")) != key(**part("50"))
    assert key(**full()) == "full:ordered by mistake"
    assert credit_note_uuid(invoice.id, "k") == credit_note_uuid(
        invoice_uuid("2026-03", "ACME-001"), "k"
    )


def test_a_credit_note_knows_the_terms_it_was_issued_with() -> None:
    invoice = issued(line("100.00"), line("10.00"))
    note = credit(invoice, **part("50.00"))
    resolved = resolve_terms(invoice, CreditTerms(reason="outage", amount=D(50)))

    assert same_terms(note, resolved)
    assert not same_terms(note, resolved.model_copy(update={"amount": D("50.01")}))
    assert not same_terms(note, resolved.model_copy(update={"reason": "other"}))
    assert not same_terms(note, CreditTerms(reason="outage"))


def test_crediting_again_with_the_same_credit_note_is_refused_by_the_invoice() -> None:
    invoice = issued(line("100.00"))
    note = credit(invoice, **part("10.00"))
    with pytest.raises(InvoiceError, match="already credited by CN-00000001"):
        invoice.record_credit(note, LATER)


# Events and rebuilding ----------------------------------------------------------------------


def test_invoices_opened_before_credit_notes_existed_read_as_invoices() -> None:
    stored = {
        "originator_id": str(uuid4()), "originator_version": 1, "timestamp": AT.isoformat(),
        "run_id": "2026-03", "account_id": "ACME-001", "currency": "EUR",
        "posting_date": "2026-03-31",
    }  # fmt: skip
    opened = InvoiceOpened.model_validate(stored)
    assert (opened.document_type, opened.corrects, opened.reason) == (
        DocumentType.INVOICE,
        None,
        None,
    )
    invoice = Invoice.project(None, [opened])
    assert invoice is not None and not invoice.is_credit_note


def test_an_invoice_and_its_credit_note_rebuilt_from_their_events_are_the_same() -> None:
    invoice = issued(line("100.00"), line("12.00", "6"))
    before = invoice.version
    note = credit(invoice, **part("5.00", "6"))
    rebuilt_note = Invoice.project(None, note.collect_events())
    assert rebuilt_note is not None
    assert (rebuilt_note.display_number, rebuilt_note.total, rebuilt_note.corrects) == (
        "CN-00000001", D("-5.30"), invoice.id,
    )  # fmt: skip
    credited = invoice.collect_events()
    assert [e.originator_version for e in credited] == [before + 1]
    assert format_document_number(3, "credit_note") == "CN-00000003"
    assert format_document_number(3, DocumentType.INVOICE) == "INV-00000003"


def test_a_full_credit_of_a_free_untaxed_line_prints_no_negative_zero() -> None:
    invoice = issued(line("0.00", "0"), line("100.00"))
    free = credit(invoice, **full()).lines[0]
    assert (str(free.amount), str(free.unit_amount), str(free.tax)) == ("0.00", "0.00", "0.00")


# Tax rounded once per rate (EN 16931 BR-CO-17) ------------------------------------------


def test_many_same_rate_lines_are_taxed_once_on_their_sum_not_rounded_line_by_line() -> None:
    # Three 5-yen lines at 10 %: 0.5 each rounds up to 1 per line (3 in all), where
    # 15 x 10 % = 1.5 rounds once to 2.
    invoice = issued(*(line("5", "10", "JPY") for _ in range(3)), currency="JPY")
    assert [x.tax for x in invoice.lines] == [D(1), D(1), D(1)]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D(15), D(2), D(17))
    assert invoice.amounts_by_rate() == {D(10): (D(15), D(2))}


def test_a_full_credit_takes_exactly_the_tax_of_each_rate_rounded_once() -> None:
    invoice = issued(*(line("0.10", "25") for _ in range(3)), line("1.00", "6"))
    note = credit(invoice, **full())
    assert invoice.tax == D("0.08") + D("0.06")  # 0.075 -> 0.08, and 0.06
    assert note.total == -invoice.total
    assert note.amounts_by_rate() == {
        D(25): (D("-0.30"), D("-0.08")),
        D(6): (D("-1.00"), D("-0.06")),
    }
