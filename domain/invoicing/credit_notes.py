"""Credit notes: an issued invoice corrected by a document of its own.

A credit note is an `Invoice` aggregate of type `credit_note` (`DocumentType`):
it has its own number from its own gapless sequence (CN-00000001, ...), its
own lines, and is rendered and delivered like an invoice, under the run that
governs the invoice it corrects. Its lines are negative:

- a **full** credit has one line per line of the invoice, each negated (same
  tax rate, the line's own tax negated, the last line of each rate taking the
  difference to the invoice's tax at that rate, which is rounded once per rate),
  so the credit note's total is exactly minus the invoice's;
- a **partial** credit has one line: the net amount to credit at one of the
  invoice's tax rates, its tax rounded by the one rule (`domain.billing.pricing.tax_on`),
  never more than the tax still creditable at that rate, and a partial credit of
  all the net still creditable at a rate takes all the tax still creditable at
  that rate, so that credits, however split, add up to the invoice exactly.

A credit note's tax is the sum of its lines' taxes (not recomputed per rate),
which is what makes that exact; it stays within a minor unit of its taxable
amount x rate, inside EN 16931's tolerance for BR-CO-17.

The invoice records each credit note (`InvoiceCredited`) in the same
transaction, and refuses one that would take more off it than its total, or
more net at a rate than it billed at that rate (`Invoice.record_credit`).

Only an issued invoice (approved, or delivered) is credited; a draft is
cancelled instead. The id is deterministic (`domain.shared.ids.credit_note_uuid`):
the operator's key, or one derived from the terms, so issuing the same credit
twice issues one credit note.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid5

from domain.billing.lines import InvoiceLine, LineKind
from domain.billing.pricing import tax_on
from domain.invoicing.invoice import Invoice
from domain.shared.errors import InvoiceError
from domain.shared.ids import NAMESPACE
from domain.shared.model import ValueObject
from domain.shared.money import round_to_currency

CREDIT_CATEGORY = "credits"
FULL_RULE = "credit:full"
PARTIAL_RULE = "credit:partial"


class CreditTerms(ValueObject):
    """What to credit: everything (`amount` None), or a net amount at one tax rate."""

    reason: str
    amount: Decimal | None = None
    """Net (tax excluded), positive; None: a full credit."""
    tax_rate: Decimal | None = None
    """Percent; with `amount`, required when the invoice has several rates."""

    @property
    def full(self) -> bool:
        return self.amount is None


def percent(rate: Decimal) -> str:
    return f"{rate.normalize():f} %"


def resolve_terms(invoice: Invoice, terms: CreditTerms) -> CreditTerms:
    """The terms checked against the invoice and made exact: the reason trimmed,
    the amount at the currency's minor unit, the tax rate the invoice's own (the
    only one it has, when not given). Raises InvoiceError."""
    reason = " ".join(terms.reason.split())
    if not reason:
        raise InvoiceError(f"invoice {invoice.name}: a credit note needs a reason")
    if terms.amount is None:
        if terms.tax_rate is not None:
            raise InvoiceError("a full credit credits every line at its own rate: no tax rate")
        return CreditTerms(reason=reason)
    amount = terms.amount
    currency = invoice.currency
    if not amount.is_finite() or amount != round_to_currency(amount, currency):
        raise InvoiceError(
            f"credit amount {amount}: not an amount of {currency} (at most its minor unit)"
        )
    if amount <= 0:
        raise InvoiceError(f"credit amount {amount}: a credit is a positive net amount")
    rates = sorted(invoice.amounts_by_rate(), reverse=True)
    listed = ", ".join(percent(r) for r in rates) or "none"
    if terms.tax_rate is None:
        if len(rates) != 1:
            raise InvoiceError(
                f"invoice {invoice.name} has lines at several tax rates ({listed}): say which "
                "one the credit is at (--tax-rate)"
            )
        rate = rates[0]
    else:
        matching = [r for r in rates if r == terms.tax_rate]
        if not matching:
            raise InvoiceError(
                f"invoice {invoice.name} has no line at {percent(terms.tax_rate)}; its rates: "
                f"{listed}"
            )
        rate = matching[0]
    return CreditTerms(reason=reason, amount=round_to_currency(amount, currency), tax_rate=rate)


def credit_key(terms: CreditTerms) -> str:
    """The key of resolved terms: the same credit asked twice is the same key."""
    if terms.amount is None:
        return f"full:{terms.reason}"
    return f"amount:{terms.amount}:{_rate(terms).normalize():f}:{terms.reason}"


def _rate(terms: CreditTerms) -> Decimal:
    """The tax rate of resolved terms for an amount (`resolve` always sets it)."""
    if terms.tax_rate is None:
        raise InvoiceError(f"credit of {terms.amount} has no tax rate: resolve the terms first")
    return terms.tax_rate


def negated(value: Decimal) -> Decimal:
    """`-value`, exactly, and never a negative zero (a 0 % line's tax stays 0.00)."""
    result = -value
    return result.copy_abs() if result.is_zero() else result


def credit_lines(
    invoice: Invoice, credit_note_id: UUID, terms: CreditTerms, run_id: str, issued_on: date
) -> list[InvoiceLine]:
    """The credit note's lines for resolved `terms` (see the module docstring)."""
    if terms.amount is None:
        return _full_credit_lines(invoice, credit_note_id, run_id, issued_on)
    rate = _rate(terms)
    amount, currency = terms.amount, invoice.currency
    tax = tax_on(amount, rate, currency)
    left_net, left_tax = invoice.creditable_by_rate().get(rate, (Decimal(0), Decimal(0)))
    if left_tax >= 0 and (amount == left_net or tax > left_tax):
        tax = left_tax  # the last of the rate: credits add up to the invoice exactly
    at_rate = [line for line in invoice.lines if line.tax_rate == rate]
    return [
        InvoiceLine(
            line_id=uuid5(NAMESPACE, f"credit-line:{credit_note_id}:{rate.normalize():f}"),
            account_id=invoice.account_id,
            run_id=run_id,
            source=f"credit:{invoice.name}",
            description=terms.reason,
            service_period_start=min(line.service_period_start for line in at_rate),
            service_period_end=max(line.service_period_end for line in at_rate),
            quantity=Decimal(1),
            unit_amount=negated(amount),
            amount=negated(amount),
            currency=currency,
            posting_date=issued_on,
            rule=PARTIAL_RULE,
            kind=LineKind.CHARGE,
            category=CREDIT_CATEGORY,
            tax_rate=rate,
            tax=negated(tax),
        )
    ]


def _full_credit_lines(
    invoice: Invoice, credit_note_id: UUID, run_id: str, issued_on: date
) -> list[InvoiceLine]:
    """Every line of `invoice` negated; the last line of each rate also takes the
    difference between the invoice's tax at that rate (rounded once) and the sum
    of the rate's line taxes, so the credit note's tax is minus the invoice's."""
    rate_tax = {rate: tax for rate, (_net, tax) in invoice.amounts_by_rate().items()}
    last_of_rate = {line.tax_rate: index for index, line in enumerate(invoice.lines)}
    lines_tax: dict[Decimal, Decimal] = {}
    for line in invoice.lines:
        lines_tax[line.tax_rate] = lines_tax.get(line.tax_rate, Decimal(0)) + line.tax
    return [
        line.model_copy(
            update={
                "line_id": uuid5(NAMESPACE, f"credit-line:{credit_note_id}:{line.line_id}"),
                "run_id": run_id,
                "unit_amount": negated(line.unit_amount),
                "amount": negated(line.amount),
                "tax": negated(
                    line.tax
                    + (
                        rate_tax[line.tax_rate] - lines_tax[line.tax_rate]
                        if index == last_of_rate[line.tax_rate]
                        else 0
                    )
                ),
                "posting_date": issued_on,
                "rule": FULL_RULE,
                "original_amount": (
                    None if line.original_amount is None else negated(line.original_amount)
                ),
                "base_amount": None if line.base_amount is None else negated(line.base_amount),
            }
        )
        for index, line in enumerate(invoice.lines)
    ]


def issue_credit_note(
    invoice: Invoice,
    credit_note_id: UUID,
    terms: CreditTerms,
    number: int,
    issued_on: date,
    at: datetime,
    printed_number: str | None = None,
) -> Invoice:
    """Issue the credit note `credit_note_id` (numbered `number`, printed
    `printed_number` by the invoice's issuing entity, None for the default's) correcting
    `invoice` by resolved `terms`: opened, its lines added, closed released and
    approved (an operator issued it deliberately: it has no review of its own),
    and recorded on the invoice. Raises InvoiceError, and then neither the invoice
    nor the returned credit note is to be saved."""
    note = Invoice.open_credit_note(invoice, credit_note_id, terms.reason, issued_on, at)
    for line in credit_lines(invoice, note.id, terms, note.run_id, issued_on):
        note.add_line(line, at)
    note.close(number, at, issued_by=invoice.issued_by, printed_number=printed_number)
    note.approve(at, reason=terms.reason)
    invoice.record_credit(note, at)
    return note


def same_terms(note: Invoice, terms: CreditTerms) -> bool:
    """Whether the credit note `note` was issued with the resolved `terms` (a second
    request with the same key and other terms is refused, not taken for the first)."""
    if note.credit_reason != terms.reason or not note.lines:
        return False
    if terms.amount is None:
        return all(line.rule == FULL_RULE for line in note.lines)
    if len(note.lines) != 1:
        return False
    line = note.lines[0]
    return (
        line.rule == PARTIAL_RULE
        and line.amount == -terms.amount
        and line.tax_rate == terms.tax_rate
    )
