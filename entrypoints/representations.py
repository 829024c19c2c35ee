"""The JSON form of each thing billrun shows: what `--json` prints in the CLI and
what the HTTP API answers, built here once (one serializer, not two).

Money is a decimal string, dates and instants ISO 8601, ids as the operator
wrote them (the aggregate's uuid beside, where a program may want it).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from application.billing.exchange_rates import rate_table
from application.receivables.payments import PaymentRecording
from domain.billing.account import Account
from domain.billing.contracts import term_end
from domain.billing.exchange_rates import ExchangeRateBook
from domain.billing.state import Charge, Contract
from domain.billing.terms import UsageRecord
from domain.invoicing.bill_group import BillGroup
from domain.runs.schedule import Schedule, next_occurrence, period_for, run_id_for
from domain.runs.schedule_terms import WEEKDAYS
from domain.shared.ids import account_uuid
from domain.shared.money import plain, round_to_currency


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


def rate_rows(book: ExchangeRateBook, on: date | None) -> list[tuple[str, date | None, Decimal]]:
    """Every recorded rate (pair, effective date, rate), or those in effect `on` a
    day (without their dates)."""
    if on is not None:
        return [(pair, None, rate) for pair, rate in book.snapshot(on).rates.items()]
    return list(rate_table(book))


def rates_json(book: ExchangeRateBook, on: date | None) -> dict[str, Any]:
    """`billrun rates list --json`."""
    return {
        "base_currency": book.base_currency,
        "on": on.isoformat() if on else None,
        "rates": [
            {
                "pair": pair,
                "effective_date": effective.isoformat() if effective else None,
                "rate": plain(rate),
            }
            for pair, effective, rate in rate_rows(book, on)
        ],
    }


def contract_json(account: Account, contract: Contract) -> dict[str, Any]:
    terms = contract.terms
    return {
        **terms.model_dump(mode="json"),
        "term_end": term_end(terms).isoformat(),
        "terminated_on": None if contract.terminated_on is None else str(contract.terminated_on),
        "ends_on": contract.ends_on.isoformat(),
        "currency": account.currency,
        "spend": str(account.contract_spend(terms.contract_id)),
        "penalties": [
            {
                "reason": str(reason),
                "amount": str(line.amount),
                "tax": str(line.tax),
                "run_id": line.run_id,
                "line_id": str(line.line_id),
            }
            for reason, line in contract.penalties.items()
        ],
    }


def bill_group_json(group: BillGroup) -> dict[str, Any]:
    """A bill group's settings: how its invoices close, are reviewed and delivered."""
    return {
        "id": group.group_id,
        "version": group.version,
        "delivery": group.delivery_channel.value,
        "email_subject": group.email_subject,
        "email_template": group.email_template,
        "first_invoice_email_template": group.first_invoice_email_template,
        "close_type": group.close_type.value,
        "zero_invoices": group.zero_invoices,
        "review_rules": group.review_rules.model_dump(mode="json"),
        "payment_terms_days": group.payment_terms_days,
        "dunning": group.dunning.model_dump(mode="json"),
        "suspended_billing": group.suspended_billing.value,
        "issuing_entity": group.issuing_entity,
    }
