"""Gathering a family's billed lines onto invoices, by its bill group's close type.

A family is an invoicer account and its members (`application.billing.invoicers`); a
lone account is a family of one. Its lines go onto the invoicer's open invoice
(opened when there is none), converted to the invoicer's currency with the
run's rates. When that invoice closes depends on the group's close type
(`domain.invoicing.group_terms.CloseType`):

- `post_user_billing` (default): as soon as the family has passed through
  billing in a run, with whatever was still open on it;
- `user_bill_cycle`: when the family reaches its bill cycle in a run (a package
  of it is due), *before* the family is billed; what is billed then opens a new
  invoice that stays open until a package is next due (a month for a monthly
  package, three for a quarterly one: the seed's wording);
- `after_each_bill_run`: by the run's closing pass, after everyone is billed
  (`close_after_run`), including families that had nothing billed.

A run whose settings leave `run_invoices` off closes nothing: the lines wait on
open invoices for a run that invoices.

An invoice closed in a run that does not reach the invoicer's bill day is held
(closed and numbered, not rendered or delivered) until a run that does reach
it releases it (seed: rendering and delivery happen only on the bill day).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from uuid import UUID

from domain.billing.account import Account
from domain.billing.exchange_rates import convert_line
from domain.billing.lines import InvoiceLine
from domain.invoicing.bill_group import BillGroup
from domain.invoicing.group_terms import CloseType
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.receivables.events import DunningApplied
from domain.receivables.receivables import Receivables
from domain.runs.bill_run import BillRun


@dataclass
class Closing:
    """An invoice to close, with its number reserved by the caller."""

    invoice: Invoice
    invoicer: Account
    release: bool
    group: BillGroup
    """The invoicer's bill group, whose review rules judge the invoice as it closes."""
    receivables: Receivables | None = None
    """The invoicer's receivables, which the closed invoice is posted to (set by the
    executor, which loads them for the whole batch)."""


@dataclass
class FamilyOutcome:
    closing: list[Closing] = field(default_factory=list)
    left_open: Invoice | None = None
    opened: Invoice | None = None
    released: list[UUID] = field(default_factory=list)
    lines: int = 0
    added: list[tuple[UUID, InvoiceLine]] = field(default_factory=list)
    """(invoice id, line) of every line the family's invoice received: what the run's
    content digest and preview are computed from."""
    dunning: list[DunningApplied] = field(default_factory=list)
    """The dunning stages the run's AR step applied to the family's invoices."""
    stranded: list[tuple[str, str, date]] = field(default_factory=list)
    """(account, package, bill date) of package bill dates before the run's period
    that no run billed and this run left owed (it does not catch up)."""


def invoice_family(
    run: BillRun,
    invoicer: Account,
    members: list[Account],
    group: BillGroup,
    open_invoice: Invoice | None,
    at: datetime,
    hold: bool = False,
) -> FamilyOutcome:
    """Bill the family for `run` and decide what opens, closes and is released.
    `hold`: the invoicer is suspended in a group that holds a suspended account's
    invoices, so what closes is held and nothing held is released."""
    outcome = FamilyOutcome()
    bill_day = invoicer.bill_day_within(run.period) and not hold
    if bill_day:
        outcome.released = invoicer.release_held_invoices(run.run_id, at)
    family = [invoicer, *members]
    invoicing = run.settings.run_invoices
    if (
        invoicing
        and open_invoice is not None
        and group.close_type is CloseType.USER_BILL_CYCLE
        and any(a.has_package_due(run.period) for a in family)
    ):
        outcome.closing.append(Closing(open_invoice, invoicer, release=bill_day, group=group))
        invoicer.track_open_invoice(None, at)
        open_invoice = None

    scope = run.settings.scope
    lines = [
        convert_line(line, invoicer.currency, run.rates)
        for account in family
        for line in account.bill(run.run_id, run.period, run.posting_date, at, scope)
    ]
    outcome.stranded = [
        (account.account_id, package_id, day)
        for account in family
        for package_id, day in account.stranded(run.period, scope)
    ]
    zero_invoice = (
        not lines
        # A stranded bill date is owed, not nothing: no zero invoice pretends otherwise.
        and not outcome.stranded
        and open_invoice is None
        and group.zero_invoices
        and scope.packages
        # Only where the run covered the family's billing: a category run owes
        # nothing to a family without a package in its categories.
        and any(a.has_active_package(run.period, scope) for a in family)
        and not any(a.invoiced_within(run.period) for a in family)
    )
    if zero_invoice:
        invoicer.issue_zero_invoice(run.run_id, run.period, at)
    if lines or zero_invoice:
        if open_invoice is None:
            open_invoice = outcome.opened = Invoice.open(
                run.run_id, invoicer.account_id, invoicer.currency, run.posting_date, at
            )
        for line in lines:
            open_invoice.add_line(line, at)
        outcome.lines = len(lines)
        outcome.added = [(open_invoice.id, line) for line in lines]

    if open_invoice is None:
        return outcome
    if invoicing and group.close_type is CloseType.POST_USER_BILLING:
        outcome.closing.append(Closing(open_invoice, invoicer, release=bill_day, group=group))
        # An invoice opened and closed in this batch is never open between
        # transactions, so the account need not record it (no events for it).
        invoicer.track_open_invoice(None, at)
    else:
        invoicer.track_open_invoice(open_invoice.id, at)
        if lines or outcome.opened is not None:
            outcome.left_open = open_invoice
    return outcome


def close_after_run(
    run: BillRun, invoicer: Account, group: BillGroup, open_invoice: Invoice | None, at: datetime
) -> FamilyOutcome:
    """The closing pass of an `after_each_bill_run` group: close what is open."""
    outcome = FamilyOutcome()
    if group.close_type is not CloseType.AFTER_EACH_BILL_RUN or not run.settings.run_invoices:
        return outcome
    bill_day = invoicer.bill_day_within(run.period)
    if open_invoice is not None:
        outcome.closing.append(Closing(open_invoice, invoicer, release=bill_day, group=group))
        invoicer.track_open_invoice(None, at)
    return outcome


Issuer = tuple[str | None, str | None, int | None]
"""An invoice's issuing entity, its printed number and the entity's payment terms;
all None for the default entity (INV- numbers, the default terms)."""
DEFAULT_ISSUER: Issuer = (None, None, None)


def close_numbered(
    closings: list[Closing],
    numbers: list[int],
    run_id: str,
    at: datetime,
    posting_date: date | None = None,
    issuers: list[Issuer] | None = None,
) -> None:
    """Close each invoice with its reserved number (`issuers`: each one's issuing
    entity, printed number and payment terms, None for the default entity's),
    issued on the closing run's `posting_date` (an invoice a later run closes,
    `user_bill_cycle`, is issued then, not when it opened; None: as opened), and its
    due date from that date (the invoicer's payment terms, else its group's, else
    its issuing entity's); hold those not released. Each closed invoice
    is judged by its group's review rules (`domain.invoicing.review_rules`): every verdict is
    recorded on it, and the first rule that objects quarantines or rejects it. An
    invoice not rejected is posted to the invoicer's receivables."""
    issuers = issuers or [DEFAULT_ISSUER] * len(closings)
    for closing, number, (issued_by, printed, entity_terms) in zip(
        closings, numbers, issuers, strict=True
    ):
        invoice, invoicer, receivables = closing.invoice, closing.invoicer, closing.receivables
        assert invoice.posting_date is not None and receivables is not None
        issued = posting_date or invoice.posting_date
        # The account's terms, else its group's, else its issuing entity's.
        group_terms = closing.group.payment_terms_days
        terms = receivables.terms_days(entity_terms if group_terms is None else group_terms)
        due_date = issued + timedelta(days=terms)
        invoice.close(
            number, at, run_id=run_id, release=closing.release, due_date=due_date,
            posting_date=issued, issued_by=issued_by, printed_number=printed,
        )  # fmt: skip
        rules = closing.group.review_rules
        if rules.enabled:
            verdicts = rules.evaluate(
                invoice.total, invoice.currency, invoicer.account_id, invoicer.invoice_email
            )
            invoice.record_verdicts(verdicts, at)
        if invoice.review_status is not ReviewStatus.REJECTED:
            assert invoice.display_number is not None
            receivables.post_invoice(
                invoice.id, invoice.display_number, invoice.posting_date, due_date,
                invoice.total, at,
            )  # fmt: skip
        if not closing.release:
            closing.invoicer.hold_invoice(closing.invoice.id, at)
