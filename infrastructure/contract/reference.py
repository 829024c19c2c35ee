"""Reference data: bill groups, exchange rates and schedules, public form.

Each carries its own natural key (`group_id`, the currency pair, the schedule's
`name`); none needs facts of earlier events.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from infrastructure.contract.base import Currency, Facts, PublicEvent, PublicForm, Rate, plain


class BillGroupConfiguredV1(PublicEvent):
    """A bill group was created or reconfigured (the full configuration is in
    `billrun history --all`)."""

    ce_type = "billrun.bill_group.configured.v1"
    group_id: str
    delivery_channel: str
    close_type: str
    payment_terms_days: int | None


class ExchangeRateSetV1(PublicEvent):
    """An exchange rate took effect: 1 `base` = `rate` `quote`."""

    ce_type = "billrun.exchange_rates.rate_set.v1"
    base: Currency
    quote: Currency
    rate: Rate
    effective_date: date


class BaseCurrencySetV1(PublicEvent):
    """The currency exchange rates are quoted against was set."""

    ce_type = "billrun.exchange_rates.base_currency_set.v1"
    currency: Currency


class ScheduleAddedV1(PublicEvent):
    """A bill run schedule was added."""

    ce_type = "billrun.schedule.added.v1"
    name: str


class ScheduleRemovedV1(PublicEvent):
    """A bill run schedule was removed."""

    ce_type = "billrun.schedule.removed.v1"
    name: str


def _group(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        "group_id": p["group_id"],
        "delivery_channel": p["delivery_channel"],
        "close_type": p.get("close_type", "post_user_billing"),
        "payment_terms_days": p.get("payment_terms_days"),
    }


def _rate(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {
        "base": p["base"],
        "quote": p["quote"],
        "rate": plain(p["rate"]),
        "effective_date": p["effective_date"],
    }


def _base(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {"currency": p["currency"]}


def _schedule(p: dict[str, Any], f: Facts) -> dict[str, Any]:
    return {"name": p["name"]}


FORMS = (
    PublicForm("BillGroupConfigured", BillGroupConfiguredV1, _group, "group_id"),
    PublicForm("ExchangeRateSet", ExchangeRateSetV1, _rate, "quote"),
    PublicForm("BaseCurrencySet", BaseCurrencySetV1, _base, "currency"),
    PublicForm("ScheduleAdded", ScheduleAddedV1, _schedule, "name"),
    PublicForm("ScheduleRemoved", ScheduleRemovedV1, _schedule, "name"),
)

OPENERS: dict[str, Any] = {}
