"""The bill run's AR step: dunning, before anything is billed (seed order).

Each selected invoicer's overdue invoices are judged against its bill group's
dunning rules as of the run's posting date (`Receivables.run_dunning`), so a
run replayed or repeated judges the same way. A stage's late fee becomes a
one-off charge on the account, with an id made of the invoice and the stage,
so it is added (and billed) once: by this run when it bills charges, else by
the next run that does. Notices are sent by the worker (`consumers/dunning.py`)
when it sees `DunningApplied`; suspension is recorded on the receivables.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from domain.billing.account import Account
from domain.billing.terms import ChargeTerms
from domain.invoicing.bill_group import BillGroup
from domain.receivables.events import DunningApplied
from domain.receivables.receivables import Receivables
from domain.runs.bill_run import BillRun

LATE_FEE_CATEGORY = "late fees"


def late_fee_charge(applied: DunningApplied, on: date) -> ChargeTerms:
    """The one-off charge for a stage's late fee. Untaxed: a late-payment fee is
    compensation, outside the scope of VAT in the EU (CJEU C-277/05)."""
    assert applied.fee is not None
    return ChargeTerms(
        charge_id=f"late-fee:{applied.number}:stage-{applied.stage}",
        description=(
            f"Late payment fee: invoice {applied.number}, {applied.days_overdue} days overdue"
        ),
        amount=applied.fee,
        charge_date=on,
        category=LATE_FEE_CATEGORY,
        tax_rate=Decimal(0),
    )


def apply_dunning(
    run: BillRun,
    invoicer: Account,
    receivables: Receivables | None,
    group: BillGroup,
    at: datetime,
) -> list[DunningApplied]:
    """Apply the group's dunning rules to the invoicer's overdue invoices when the
    run's settings say so; the late fees are added to the invoicer as charges."""
    if not run.settings.run_dunning or receivables is None or not group.dunning.enabled:
        return []
    applied = receivables.run_dunning(run.run_id, group.dunning, run.posting_date, at)
    for event in applied:
        if event.fee is not None and event.fee > 0:
            invoicer.add_charge(late_fee_charge(event, run.posting_date), at)
    return applied
