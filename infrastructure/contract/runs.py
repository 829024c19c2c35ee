"""Runs: bill runs (one `BillRun` aggregate each), public form.

Every body carries `run_id`, the operator's name of the run. Stored run events
after `RunScheduled` with a public form carry it from class version 2 on; those
stored before carry only the aggregate's UUID, and get the run id from the
aggregate's facts (its `RunScheduled`).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from infrastructure.contract.base import Amount, Currency, Facts, PublicEvent, PublicForm, plain


class RunEvent(PublicEvent):
    run_id: str


class CurrencyTotal(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    currency: Currency
    net: Amount
    tax: Amount


class RunStatistics(BaseModel):
    """What a run billed (see `billrun run status`)."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    accounts_seen: int
    accounts_billed: int
    accounts_skipped: int
    accounts_parked: int
    invoices: int
    """Invoices this run closed: the number of `billrun.invoice.closed.v1` with this
    run id and `document_type` invoice."""
    lines: int
    totals: list[CurrencyTotal]


class RunScheduledV1(RunEvent):
    """A bill run was scheduled for a period."""

    ce_type = "billrun.run.scheduled.v1"
    period_start: date
    period_end: date
    posting_date: date
    accounts: list[str]
    """The accounts selected by name (empty: by bill group or all)."""
    bill_groups: list[str]
    """The bill groups selected (empty with no accounts: every account)."""


class RunStartedV1(RunEvent):
    """A bill run started billing."""

    ce_type = "billrun.run.started.v1"
    accounts_in_scope: int


class RunCompletedV1(RunEvent):
    """A bill run finished billing and closing."""

    ce_type = "billrun.run.completed.v1"
    batches: int
    statistics: RunStatistics


class RunFailedV1(RunEvent):
    """A bill run stopped on an error (it can be resumed)."""

    ce_type = "billrun.run.failed.v1"
    reason: str


class RunCancelledV1(RunEvent):
    """A bill run was cancelled; its invoices were cancelled with it."""

    ce_type = "billrun.run.cancelled.v1"
    mode: Literal["reopen", "discard"]
    reason: str
    invoices_cancelled: int


class RunValidatedV1(RunEvent):
    """A bill run's invoices were approved together."""

    ce_type = "billrun.run.validated.v1"
    invoices_approved: int


class RunFinalizedV1(RunEvent):
    """A bill run is final: nothing more will change in it."""

    ce_type = "billrun.run.finalized.v1"


def scheduled_facts(payload: dict[str, Any]) -> Facts:
    return {"run_id": payload["run_id"]}


def _run(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    # The event's own field (stored from class version 2 on), else the facts.
    return {"run_id": p.get("run_id") or f.get("run_id")}


def _scheduled(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    selection = p.get("selection") or {}
    return {
        "run_id": p["run_id"],
        "period_start": p["period_start"],
        "period_end": p["period_end"],
        "posting_date": p["posting_date"],
        "accounts": list(selection.get("accounts", ())),
        "bill_groups": list(selection.get("groups", ())),
    }


def _started(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_run(p, f), "accounts_in_scope": p["accounts_in_scope"]}


def statistics(stats: dict[str, Any]) -> dict[str, Any]:
    totals, taxes = stats.get("totals", {}), stats.get("tax_totals", {})
    return {
        **{key: stats.get(key, 0) for key in (
            "accounts_seen", "accounts_billed", "accounts_skipped", "accounts_parked",
            "invoices", "lines")},
        "totals": [
            {"currency": code, "net": plain(totals[code]), "tax": plain(taxes.get(code, "0"))}
            for code in sorted(totals)
        ],
    }  # fmt: skip


def _completed(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_run(p, f), "batches": p["batches"], "statistics": statistics(p["statistics"])}


def _failed(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_run(p, f), "reason": p["reason"]}


def _cancelled(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        **_run(p, f),
        "mode": p["mode"],
        "reason": p["reason"],
        "invoices_cancelled": p["invoices_cancelled"],
    }


def _validated(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {**_run(p, f), "invoices_approved": p["invoices_approved"]}


FORMS = (
    PublicForm("RunScheduled", RunScheduledV1, _scheduled, "run_id"),
    PublicForm("RunStarted", RunStartedV1, _started, "run_id"),
    PublicForm("RunCompleted", RunCompletedV1, _completed, "run_id"),
    PublicForm("RunFailed", RunFailedV1, _failed, "run_id"),
    PublicForm("RunCancelled", RunCancelledV1, _cancelled, "run_id"),
    PublicForm("RunValidated", RunValidatedV1, _validated, "run_id"),
    PublicForm("RunFinalized", RunFinalizedV1, _run, "run_id"),
)

OPENERS = {"RunScheduled": scheduled_facts}

SELF_CONTAINED_FROM_V2 = frozenset(form.stored for form in FORMS) - {"RunScheduled"}
"""Stored as class version 2 or later, these carry their run id (`RunScheduled`
always did)."""
