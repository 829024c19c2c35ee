"""Scheduling one bill run (`schedule_run`), after checking its selection
(`check_selection`). Schedules that queue runs by themselves, and the manager that
executes them: `application/runs/scheduler.py`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date

from eventsourcing.persistence import RecordConflictError

from application.shared.app import Billing
from application.shared.errors import InvalidInput, Problem, RunNotFound
from domain.billing.account import Account
from domain.billing.events import AccountDetailsChanged, AccountOpened
from domain.invoicing.events import BillGroupConfigured
from domain.runs.bill_run import BillRun
from domain.runs.settings import RunOrigin, RunSettings, Selection
from domain.shared.errors import RunAlreadyScheduled
from domain.shared.ids import account_uuid
from domain.shared.periods import Period
from infrastructure.topics import topic_of

ACCOUNT_OPENED = topic_of(AccountOpened)
ACCOUNT_DETAILS_CHANGED = topic_of(AccountDetailsChanged)
BILL_GROUP_CONFIGURED = topic_of(BillGroupConfigured)


@dataclass(frozen=True)
class ScheduleOutcome:
    run: BillRun
    created: bool


def schedule_run(
    billing: Billing,
    run_id: str,
    period: Period,
    posting_date: date | None,
    selection: Selection,
    settings: RunSettings | None = None,
    origin: RunOrigin | None = None,
    disabled: bool = False,
) -> ScheduleOutcome:
    """Schedule a run; scheduling the same run again with the same terms is a no-op.
    `origin`: the schedule occurrence that queues it, if any; `disabled`: saved
    disabled in the same transaction, so no manager picks it up before the operator
    has checked or previewed it (`billrun run enable`)."""
    check_selection(billing, selection)
    try:
        existing = billing.get_run(run_id)
    except RunNotFound:
        run = BillRun.schedule(
            run_id, period, posting_date, selection, billing.clock(), settings, origin
        )
        if disabled:
            run.disable(billing.clock())
        try:
            billing.save(run)
        except RecordConflictError:
            # Another process scheduled the same run id first: judge its terms.
            existing = billing.get_run(run_id)
        else:
            return ScheduleOutcome(run, created=True)
    if existing.same_terms(period, posting_date, selection, settings):
        return ScheduleOutcome(existing, created=False)
    raise RunAlreadyScheduled(
        f"run {run_id} is already scheduled for {existing.period} "
        f"(posting {existing.posting_date}, {existing.selection.describe()}); "
        "choose another run id"
    )


def check_selection(billing: Billing, selection: Selection) -> None:
    """Refuse a selection naming unknown accounts or bill groups (a typo would
    otherwise schedule a run that bills nothing), or members of a family; an
    unknown name is shown with the known names closest to it."""
    found = billing.load_many(Account, [account_uuid(a) for a in selection.accounts])
    problems = []
    known_accounts: set[str] | None = None
    for account_id in selection.accounts:
        account = found.get(account_uuid(account_id))
        if account is None:
            if known_accounts is None:  # read only when needed: it may be many
                known_accounts = billing.queries.distinct_values([ACCOUNT_OPENED], "account_id")
            problems.append(
                Problem(
                    "--account",
                    f"no account {account_id!r}" + _close(account_id, known_accounts),
                )
            )
        elif account.invoicer is not None:
            problems.append(
                Problem(
                    "--account",
                    f"account {account_id} is billed onto {account.invoicer}'s invoices: "
                    f"select {account.invoicer} (a run bills a family with its invoicer)",
                )
            )
    if selection.groups:
        known_groups = billing.queries.distinct_values(
            [ACCOUNT_OPENED, ACCOUNT_DETAILS_CHANGED], "bill_group"
        ) | billing.queries.distinct_values([BILL_GROUP_CONFIGURED], "group_id")
        for group in selection.groups:
            if group not in known_groups:
                problems.append(
                    Problem(
                        "--group",
                        f"no bill group {group!r}: no account is in it and it is not "
                        "configured" + _close(group, known_groups),
                    )
                )
    if problems:
        raise InvalidInput("selection", problems)


def _close(name: str, known: set[str]) -> str:
    """`; did you mean ...?` with the known names closest to a mistyped one."""
    matches = difflib.get_close_matches(name, sorted(known), n=3)
    return f" (did you mean {' or '.join(repr(m) for m in matches)}?)" if matches else ""
