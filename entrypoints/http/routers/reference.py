"""Schedules (when bill runs are queued) and exchange rates (fixed per run).

`billrun schedule add|list|show|remove` and `billrun rates set|list`, over HTTP,
with their `--json` representations.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

from application.billing.exchange_rates import set_rate
from application.runs.scheduler import (
    add_schedule,
    first_due,
    get_schedule,
    list_schedules,
    remove_schedule,
)
from domain.runs.schedule_terms import ScheduleTerms
from entrypoints.http.etags import tag
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.representations import rates_json, schedule_json

router = v1_router("schedules and exchange rates")

Json = dict[str, Any]


class NewSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    terms: ScheduleTerms


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str = Field(pattern=r"^[A-Z]{3}$")
    quote: str = Field(pattern=r"^[A-Z]{3}$")
    rate: Decimal = Field(gt=0, description="How many quote one base buys")
    date: date


@router.post("/schedules", status_code=201, summary="Add a schedule")
def create_schedule(book: TenantBook, schedule: NewSchedule, response: Response) -> Json:
    """The same name and terms again change nothing (`created`: false)."""
    outcome = add_schedule(book.billing, schedule.name, schedule.terms)
    now = book.billing.clock()
    tag(response, outcome.schedule.version)
    response.headers["Location"] = f"/v1/schedules/{schedule.name}"
    return {
        "created": outcome.created,
        **schedule_json(outcome.schedule, now, first_due(book.billing, outcome.schedule, now)),
    }


@router.get("/schedules", summary="List schedules")
def list_all_schedules(
    book: TenantBook,
    limit: Limit = 20,
    after: After = None,
    removed: Annotated[bool, Query(description="Include removed schedules.")] = False,
) -> Json:
    """By name, each with its next occurrence and the run it will queue."""
    now = book.billing.clock()
    schedules = sorted(list_schedules(book.billing, removed), key=lambda s: s.name)
    return page_of(
        schedules,
        lambda s: s.name,
        after,
        limit,
        lambda s: schedule_json(s, now, first_due(book.billing, s, now)),
    )


@router.get("/schedules/{name}", summary="Get a schedule")
def get_one_schedule(book: TenantBook, name: str, response: Response) -> Json:
    schedule = get_schedule(book.billing, name)
    now = book.billing.clock()
    tag(response, schedule.version)
    return schedule_json(schedule, now, first_due(book.billing, schedule, now))


@router.delete("/schedules/{name}", summary="Remove a schedule")
def delete_schedule(book: TenantBook, name: str) -> Json:
    """Runs it queued already stay queued; its name is never reused."""
    schedule = remove_schedule(book.billing, name)
    return schedule_json(schedule, book.billing.clock())


@router.get("/exchange-rates", summary="List exchange rates")
def list_rates(
    book: TenantBook,
    on: Annotated[date | None, Query(description="Only the rates in effect on this day.")] = None,
) -> Json:
    """`billrun rates list --json`."""
    return rates_json(book.billing.get_rate_book(), on)


@router.post("/exchange-rates", status_code=201, summary="Record an exchange rate")
def create_rate(book: TenantBook, rate: Rate) -> Json:
    """`1 base = rate quote` from `date` on (`billrun rates set --json`)."""
    recorded = set_rate(book.billing, rate.base, rate.quote, rate.rate, rate.date)
    return {
        "pair": f"{rate.base}/{rate.quote}",
        "rate": str(rate.rate),
        "date": rate.date.isoformat(),
        "recorded": recorded,
    }
