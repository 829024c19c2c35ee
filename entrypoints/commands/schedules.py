"""`billrun schedule ...` and `billrun scheduler`: when bill runs are queued, and
the loop that queues and executes them (docs/schedules.md)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

import typer

from application.runs.scheduler import (
    Pass,
    ScheduleNotFound,
    add_schedule,
    first_due,
    get_schedule,
    list_schedules,
    remove_schedule,
)
from domain.runs.schedule_terms import (
    DEFAULT_PERIOD_RULE,
    WEEKDAYS,
    PeriodRule,
    Recurrence,
    ScheduleTerms,
)
from domain.runs.settings import RunSettings, Selection
from entrypoints import output
from entrypoints import run_options as options
from entrypoints.common import (
    JsonFlag,
    VerboseFlag,
    date_option,
    instant,
    log_verbosely,
    refusals,
    runtime,
    until_signalled,
)
from entrypoints.refusals import UsageError
from entrypoints.representations import schedule_json
from entrypoints.runtime import Runtime
from entrypoints.worker import SCHEDULE_INTERVAL_S, keep_scheduling

schedule_app = typer.Typer(
    help="When bill runs are queued: one-off, daily, weekly or monthly, each occurrence "
    "billing the period its rule gives. `billrun scheduler` (or `billrun worker`) queues "
    "and executes them.",
    no_args_is_help=True,
)


@schedule_app.command("add")
@refusals
@options.takes_run_settings
def schedule_add(
    name: Annotated[
        str, typer.Argument(help="The schedule's name; its runs are named NAME-<date>.")
    ],
    every: Annotated[Recurrence, typer.Option("--every", help="once, daily, weekly or monthly.")],
    at: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 instant (no offset: UTC). once: when (default: now); recurring: "
            "occurrences count from it, at its time of day (default: next midnight UTC)."
        ),
    ] = None,
    day: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=31,
            help="monthly: day of the month; 29-31 mean the last day in "
            "shorter months (default: --at's day).",
        ),
    ] = None,
    weekday: Annotated[
        str | None, typer.Option(help="weekly: mon..sun (default: --at's weekday).")
    ] = None,
    period: Annotated[
        PeriodRule | None,
        typer.Option(
            help="The bill period of each occurrence (default: daily previous_day, weekly "
            "previous_week, monthly and once previous_month; fixed with --period-start/-end)."
        ),
    ] = None,
    period_start: Annotated[
        str | None, typer.Option(help="once: a fixed bill period's first day (YYYY-MM-DD).")
    ] = None,
    period_end: Annotated[
        str | None, typer.Option(help="once: a fixed bill period's last day (YYYY-MM-DD).")
    ] = None,
    *,
    selection: Selection,
    settings: RunSettings,
    json_out: JsonFlag = False,
) -> None:
    """Add a schedule: each occurrence queues one bill run, NAME-<occurrence date>.

    Occurrences from --at on are queued by `billrun scheduler` or `billrun worker`
    once due, including occurrences already past (a backfill); the same name and
    terms again do nothing, and a name is never reused.

    Examples:

      billrun schedule add monthly --every monthly --day 1 --at 2026-05-01T06:00Z

      billrun schedule add jan-rerun --every once --period-start 2026-01-01
      --period-end 2026-01-31 --group retail
    """
    with runtime() as rt:
        now = rt.billing.clock()
        start = instant("--at", at) if at is not None else _default_start(rt, name, every, now)
        timing = _timing(every, start, day, weekday, period, period_start, period_end)
        terms = ScheduleTerms(**timing, selection=selection, settings=settings)
        outcome = add_schedule(rt.billing, name, terms)
        shown = schedule_json(outcome.schedule, now, first_due(rt.billing, outcome.schedule, now))
    if json_out:
        output.print_json({"created": outcome.created, **shown})
        return
    verb = "added" if outcome.created else "already exists with these terms"
    output.console.print(f"schedule {name} {verb}: {shown['when']}, period {shown['period']}")
    if shown["next_occurrence"]:
        output.console.print(
            f"next: run {shown['next_run_id']} at {shown['next_occurrence']} for "
            f"{shown['next_period']['start']}..{shown['next_period']['end']}"
        )


def _default_start(rt: Runtime, name: str, every: Recurrence, now: datetime) -> datetime:
    """Without --at: a one-off is now, a recurring schedule starts at the next
    midnight UTC; but the same command again means the schedule it added, whose
    start is kept (so repeating it is recognised as the same schedule)."""
    try:
        existing = get_schedule(rt.billing, name)
    except ScheduleNotFound:
        existing = None
    if existing is not None and existing.terms is not None and existing.is_active:
        return existing.terms.at
    if every is Recurrence.ONCE:
        return now.replace(microsecond=0)
    return datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)


def _timing(
    every: Recurrence,
    start: datetime,
    day: int | None,
    weekday: str | None,
    period: PeriodRule | None,
    period_start: str | None,
    period_end: str | None,
) -> dict[str, Any]:
    """When the schedule's runs are queued and what they bill, from the options with
    the defaults filled in; option misuse is refused here, the rest by the domain."""
    if day is not None and every is not Recurrence.MONTHLY:
        raise UsageError("--day is for monthly schedules")
    if weekday is not None and every is not Recurrence.WEEKLY:
        raise UsageError("--weekday is for weekly schedules")
    if (period_start is None) != (period_end is None):
        raise UsageError("--period-start and --period-end go together")
    fixed = period_start is not None
    if fixed and period not in (None, PeriodRule.FIXED):
        raise UsageError(f"--period {period} and --period-start/--period-end: choose one")
    if period is PeriodRule.FIXED and not fixed:
        raise UsageError("--period fixed needs --period-start and --period-end")
    return {
        "recurrence": every,
        "at": start,
        "weekday": _weekday(weekday, start) if every is Recurrence.WEEKLY else None,
        "day_of_month": (day or start.day) if every is Recurrence.MONTHLY else None,
        "period": PeriodRule.FIXED if fixed else (period or DEFAULT_PERIOD_RULE[every]),
        "period_start": date_option("--period-start", period_start) if period_start else None,
        "period_end": date_option("--period-end", period_end) if period_end else None,
    }


def _weekday(text: str | None, start: datetime) -> int:
    if text is None:
        return start.weekday()
    short = text.strip().lower()[:3]
    if short not in WEEKDAYS:
        raise UsageError(f"--weekday: {text!r} is not one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(short)


@schedule_app.command("list")
@refusals
def schedule_list(
    removed: Annotated[bool, typer.Option("--removed", help="Include removed schedules.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """List schedules with their next occurrence, the run it will queue and its period."""
    with runtime() as rt:
        now = rt.billing.clock()
        shown = [
            schedule_json(s, now, first_due(rt.billing, s, now))
            for s in list_schedules(rt.billing, removed)
        ]
    if json_out:
        output.print_json(shown)
        return
    table = output.compact_table("Schedules")
    table.add_column("name", no_wrap=True)
    table.add_column("when")
    table.add_column("selection")
    table.add_column("next run", no_wrap=True)
    for row in shown:
        upcoming = row["next_period"]
        table.add_row(
            row["name"] + ("\nremoved" if row["removed_at"] else ""),
            # Spaced, so a narrow table wraps the period rather than cut it.
            f"{row['when']}\nbills {row['period'].replace('..', ' .. ')}",
            Selection.model_validate(row["selection"]).describe(),
            (
                f"{row['next_run_id']}\n{upcoming['start']} .. {upcoming['end']}"
                + ("\ndue now" if row["due"] else "")
            )
            if upcoming
            else "-",
        )
    output.print_table(table, droppable=("selection",))


@schedule_app.command("remove")
@refusals
def schedule_remove(name: str, json_out: JsonFlag = False) -> None:
    """Stop queueing a schedule's occurrences. Runs it already queued stay queued
    (`billrun run disable R` holds one back); its name is not reused."""
    with runtime() as rt:
        schedule = remove_schedule(rt.billing, name)
        shown = schedule_json(schedule, rt.billing.clock())
    if json_out:
        output.print_json(shown)
        return
    output.console.print(f"schedule {name} removed")


@refusals
def scheduler(
    once: Annotated[
        bool,
        typer.Option("--once", help="One pass: queue what is due, execute the queued runs, exit."),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between passes.")
    ] = SCHEDULE_INTERVAL_S,
    json_out: Annotated[
        bool, typer.Option("--json", help="With --once: print the pass as JSON.")
    ] = False,
    verbose: VerboseFlag = False,
) -> None:
    """Queue due runs and execute queued ones until SIGINT or SIGTERM.

    `billrun worker` does the same, beside the relay and the consumers.

    Any number may run at once: each occurrence is queued as exactly one run, and
    a run is executed by one manager at a time, under a lease (60 s, renewed as it
    goes) that another manager takes over when it expires. A scheduled run is
    queued whoever scheduled it; `billrun run disable R` holds one back. Stops
    gracefully at the next batch, releasing the run it was executing. Exits 1 if
    a run of an --once pass failed. Use -v to watch it work.
    """
    log_verbosely(verbose)
    with runtime(actor="worker") as rt:
        if not once:
            output.errors.print(
                f"scheduler: a pass every {interval:g} s; press Ctrl-C to stop", highlight=False
            )
        last = until_signalled(lambda stop: keep_scheduling(rt, stop, interval, once))
    if once:
        _print_pass(last, json_out)
        if any(m.outcome == "failed" for m in last.managed):
            raise typer.Exit(1)


def _print_pass(done: Pass, json_out: bool) -> None:
    queued = [
        {
            "run_id": q.run_id,
            "schedule": q.schedule,
            "occurrence": q.occurrence.isoformat(),
            "period_start": q.period.start.isoformat(),
            "period_end": q.period.end.isoformat(),
        }
        for q in done.queued
    ]
    managed = [
        {"run_id": m.run_id, "outcome": m.outcome, "detail": m.detail, "batches": m.batches}
        for m in done.managed
    ]
    if json_out:
        output.print_json({"queued": queued, "executed": managed})
        return
    for q in queued:
        output.console.print(
            f"queued run {q['run_id']} (schedule {q['schedule']}, "
            f"period {q['period_start']}..{q['period_end']})"
        )
    for m in managed:
        detail = f": {m['detail']}" if m["detail"] else ""
        output.console.print(f"run {m['run_id']}: {m['outcome']}{detail}")
    if not queued and not managed:
        output.console.print(
            "nothing to do: no occurrence due, no queued run free to execute "
            "(disabled runs and runs another manager holds are left alone)"
        )
