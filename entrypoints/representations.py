"""The JSON form of each thing billrun shows: what `--json` prints in the CLI and
what the HTTP API answers, built here once (one serializer, not two).

Money is a decimal string, dates and instants ISO 8601, ids as the operator
wrote them (the aggregate's uuid beside, where a program may want it).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from application.invoicing.review import ReviewOutcome
from application.receivables.payments import PaymentRecording
from domain.billing.account import Account
from domain.billing.state import Charge
from domain.billing.terms import UsageRecord
from domain.invoicing.invoice import Invoice
from domain.invoicing.invoice_numbers import format_credit_note_number, format_invoice_number
from domain.runs.bill_run import BillRun
from domain.runs.schedule import Schedule, next_occurrence, period_for, run_id_for
from domain.runs.schedule_terms import WEEKDAYS
from domain.shared.ids import account_uuid
from domain.shared.money import round_to_currency
from entrypoints.presenters import base_totals, run_totals
from projections.runs import totals_json


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.account_id,
        "aggregate_id": str(account_uuid(account.account_id)),
        "name": account.name,
        "currency": account.currency,
        "invoice_email": account.invoice_email,
        "bill_group": account.bill_group,
        "buyer": account.buyer.model_dump(mode="json"),
        "version": account.version,
        "packages": [
            {
                **p.terms.model_dump(mode="json"),
                "next_bill_date": p.next_bill_date.isoformat(),
                # Passed over by a run whose period began after them: stranded.
                "owed_bill_dates": [p.bill_date_of(i).isoformat() for i in p.owed],
            }
            for p in account.packages.values()
        ],
    }


def is_billed(account: Account, record: UsageRecord) -> bool:
    package = account.packages.get(record.package_id)
    return package is None or record.usage_id not in package.unbilled_usage


def usage_json(
    account: Account, record: UsageRecord, written_off_by: str | None = None
) -> dict[str, Any]:
    """`written_off_by`: the run, cancelled with --discard, that billed it."""
    return {
        **record.model_dump(mode="json"),
        "currency": account.currency,
        "billed": is_billed(account, record),
        "written_off": written_off_by is not None,
        "written_off_by_run": written_off_by,
    }


def charge_json(charge: Charge, currency: str, written_off_by: str | None = None) -> dict[str, Any]:
    """`written_off_by`: the run, cancelled with --discard, that billed it."""
    return {
        **charge.terms.model_dump(mode="json"),
        "currency": currency,
        "billed": charge.billed,
        "written_off": written_off_by is not None,
        "written_off_by_run": written_off_by,
    }


def recording_json(recording: PaymentRecording) -> dict[str, Any]:
    """Money at the currency's minor unit (exact: the aggregate accepts no more)."""
    payment = recording.payment

    def money(amount: Decimal) -> str:
        return str(round_to_currency(amount, recording.currency))

    return {
        "account": recording.account_id,
        "currency": recording.currency,
        "recorded": recording.recorded,
        "payment": {
            "payment_id": payment.payment_id,
            "amount": money(payment.amount),
            "received_on": payment.received_on.isoformat(),
            "method": payment.method,
            "reference": payment.reference,
            "allocations": [
                {
                    "invoice_id": str(a.document_id),
                    "number": recording.numbers[a.document_id],
                    "amount": money(a.amount),
                    "still_open": money(recording.open_after[a.document_id]),
                }
                for a in payment.allocations
            ],
            "credit": money(payment.credit),
        },
        "balance": money(recording.balance),
        "credit_balance": money(recording.credit_balance),
    }


# Reading ------------------------------------------------------------------------------


_STEPS = (
    "run_dunning", "bill_packages", "bill_usage", "run_contracts", "bill_charges",
    "run_invoices", "collect_payments",
)  # fmt: skip
"""The settings that switch a run's AR, billing and invoicing steps on, in the seed's
order (dunning first, collection last)."""


def settings_rows(settings: dict[str, Any] | None) -> dict[str, str]:
    """A run's settings (`RunSettings` as JSON) as an operator reads them."""
    if settings is None:  # a read model built before it kept them
        return {"steps": "unknown", "categories": "unknown"}
    steps = [step for step in _STEPS if settings.get(step)]
    categories = settings.get("categories") or []
    rows = {
        "steps": ", ".join(steps) or "none",
        "categories": ", ".join(categories) if categories else "all",
        "render invoices": "yes" if settings.get("render_invoices") else "no",
        "deliver invoices": "yes" if settings.get("deliver_invoices") else "no",
    }
    if settings.get("catch_up"):
        rows["catch up"] = "yes: stranded bill dates before the period are billed"
    if settings.get("collect_payments"):
        rows["collection type"] = str(settings.get("collection_type", "account_balance"))
    return rows


def run_json(run: BillRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "period_start": run.period.start.isoformat(),
        "period_end": run.period.end.isoformat(),
        "posting_date": run.posting_date.isoformat(),
        "selection": run.selection.model_dump(mode="json"),
        "settings": run.settings.model_dump(mode="json"),
        "accounts_in_scope": run.accounts_in_scope,
        "batches": run.batches,
        "workflow_state": run.workflow_state.value,
        "totals": totals_json(run_totals(run.statistics)),
        "base_totals": totals_json(base_totals(run.statistics)),
        "statistics": run.statistics.model_dump(mode="json"),
    }


def schedule_json(schedule: Schedule, now: datetime, due: datetime | None = None) -> dict[str, Any]:
    """A schedule as `--json` shows it; `due`: its oldest occurrence due and not yet
    queued, shown as the next one (`"due": true`) before any future occurrence."""
    terms = schedule.terms
    assert terms is not None
    upcoming = due or (next_occurrence(terms, now) if schedule.is_active else None)
    next_period = period_for(terms, upcoming) if upcoming else None
    return {
        "name": schedule.name,
        "every": terms.recurrence.value,
        "at": terms.at.isoformat(),
        "weekday": WEEKDAYS[terms.weekday] if terms.weekday is not None else None,
        "day": terms.day_of_month,
        "when": terms.describe(),
        "period": terms.describe_period(),
        "period_rule": terms.period.value,
        "selection": terms.selection.model_dump(mode="json"),
        "settings": terms.settings.model_dump(mode="json"),
        "added_at": schedule.added_at.isoformat() if schedule.added_at else None,
        "removed_at": schedule.removed_at.isoformat() if schedule.removed_at else None,
        "next_occurrence": upcoming.isoformat() if upcoming else None,
        "due": due is not None,
        "next_run_id": run_id_for(schedule.name, terms, upcoming) if upcoming else None,
        "next_period": (
            {"start": next_period.start.isoformat(), "end": next_period.end.isoformat()}
            if next_period
            else None
        ),
    }


def credits_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "document_type": invoice.document_type.value,
        "corrects": None if invoice.corrects is None else str(invoice.corrects),
        "corrects_number": (
            None
            if invoice.corrects_number is None
            else format_invoice_number(invoice.corrects_number)
        ),
        "credit_reason": invoice.credit_reason,
        "credits": [
            {
                "credit_note_id": str(c.credit_note_id),
                "credit_note": format_credit_note_number(c.credit_note_number),
                "amount": str(c.total),
                "reason": c.reason,
            }
            for c in invoice.credits.values()
        ],
        "creditable": None if invoice.is_credit_note else str(invoice.creditable_total),
    }


def invoice_json(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": str(invoice.id),
        "number": invoice.number,
        "display_number": invoice.display_number,
        **credits_json(invoice),
        "account": invoice.account_id,
        "currency": invoice.currency,
        "status": invoice.status.value,
        "run_id": invoice.run_id,
        "posting_date": invoice.posting_date.isoformat() if invoice.posting_date else None,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "subtotal": str(invoice.subtotal),
        "tax": str(invoice.tax),
        "total": str(invoice.total),
        "review_status": invoice.review_status.value if invoice.review_status else None,
        "review_reason": invoice.review_reason,
        "review_rule": invoice.review_rule,
        "verdicts": [verdict.model_dump(mode="json") for verdict in invoice.verdicts],
        "version": invoice.version,
        "lines": [line.model_dump(mode="json") for line in invoice.lines],
    }


def review_json(outcome: ReviewOutcome) -> dict[str, Any]:
    return {
        "action": outcome.action.value,
        "changed": len(outcome.changed),
        "unchanged": len(outcome.unchanged),
        "refused": len(outcome.refused),
        "invoices": [
            {
                "id": str(result.invoice_id),
                "invoice": result.invoice,
                "result": result.kind.value,
                "review_status": result.review_status,
                "reason": result.reason,
            }
            for result in outcome.results
        ],
    }
