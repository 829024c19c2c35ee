"""Bill dates, schedules and service periods: anchor-day arithmetic."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.shared.errors import InvalidPeriod, NotABillDate
from domain.shared.periods import (
    Frequency,
    Period,
    Timing,
    add_months,
    bill_date,
    index_of_bill_date,
    service_period,
)

MONTHLY, QUARTERLY, YEARLY = Frequency.MONTHLY, Frequency.QUARTERLY, Frequency.YEARLY
ADVANCE, ARREARS = Timing.ADVANCE, Timing.ARREARS


def d(iso: str) -> date:
    return date.fromisoformat(iso)


# -- add_months ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2026-01-15", 1, "2026-02-15"),
        ("2026-01-31", 1, "2026-02-28"),
        ("2028-01-31", 1, "2028-02-29"),
        ("2026-01-31", 2, "2026-03-31"),
        ("2026-01-31", 3, "2026-04-30"),
        ("2026-03-31", -1, "2026-02-28"),
        ("2024-03-31", -1, "2024-02-29"),
        ("2026-01-31", -2, "2025-11-30"),
        ("2026-12-31", 1, "2027-01-31"),
        ("2026-01-01", -1, "2025-12-01"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-02-29", 48, "2028-02-29"),
        ("2026-05-30", 0, "2026-05-30"),
        ("2026-08-31", 1, "2026-09-30"),
    ],
)
def test_adding_months_clamps_to_the_last_day_of_a_short_month(start, months, expected):
    assert add_months(d(start), months) == d(expected)


# -- Schedules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "frequency", "expected"),
    [
        (
            "2026-01-31",
            MONTHLY,
            ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"],
        ),
        (
            "2028-01-31",
            MONTHLY,
            ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31"],
        ),
        (
            "2026-01-30",
            MONTHLY,
            ["2026-01-30", "2026-02-28", "2026-03-30", "2026-04-30", "2026-05-30"],
        ),
        (
            "2026-11-30",
            QUARTERLY,
            ["2026-11-30", "2027-02-28", "2027-05-30", "2027-08-30", "2027-11-30"],
        ),
        (
            "2025-08-31",
            QUARTERLY,
            ["2025-08-31", "2025-11-30", "2026-02-28", "2026-05-31", "2026-08-31"],
        ),
        (
            "2024-02-29",
            YEARLY,
            ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"],
        ),
        (
            "2026-01-01",
            YEARLY,
            ["2026-01-01", "2027-01-01", "2028-01-01", "2029-01-01", "2030-01-01"],
        ),
    ],
)
def test_bill_dates_follow_the_anchor_day_of_their_schedule(anchor, frequency, expected):
    assert [bill_date(d(anchor), frequency, i) for i in range(5)] == [d(e) for e in expected]


def test_a_package_started_on_jan_31_bills_on_the_last_day_of_short_months():
    dates = [bill_date(d("2026-01-31"), MONTHLY, i) for i in range(12)]
    assert dates == [
        date(2026, month, calendar.monthrange(2026, month)[1]) for month in range(1, 13)
    ]


def test_a_bill_date_is_computed_from_the_anchor_not_from_the_previous_bill_date():
    # Stepping from Feb 28 would drift to the 28th for ever; the anchor brings it back.
    anchor = d("2026-01-31")
    assert bill_date(anchor, MONTHLY, 1) == d("2026-02-28")
    assert add_months(bill_date(anchor, MONTHLY, 1), 1) == d("2026-03-28")
    assert bill_date(anchor, MONTHLY, 2) == d("2026-03-31")


def test_the_frequencies_step_one_three_and_twelve_months():
    assert [f.months for f in (MONTHLY, QUARTERLY, YEARLY)] == [1, 3, 12]


# -- index_of_bill_date --------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "frequency", "when", "index"),
    [
        ("2026-01-31", MONTHLY, "2026-01-31", 0),
        ("2026-01-31", MONTHLY, "2026-02-28", 1),
        ("2026-01-31", MONTHLY, "2026-03-31", 2),
        ("2026-01-31", MONTHLY, "2027-01-31", 12),
        ("2026-01-31", MONTHLY, "2025-12-31", -1),
        ("2026-01-15", QUARTERLY, "2026-07-15", 2),
        ("2024-02-29", YEARLY, "2025-02-28", 1),
        ("2024-02-29", YEARLY, "2028-02-29", 4),
    ],
)
def test_the_index_of_a_bill_date_is_its_place_in_the_schedule(anchor, frequency, when, index):
    assert index_of_bill_date(d(anchor), frequency, d(when)) == index
    assert bill_date(d(anchor), frequency, index) == d(when)


@pytest.mark.parametrize(
    ("anchor", "frequency", "when"),
    [
        ("2026-01-31", MONTHLY, "2026-02-27"),  # the clamped day is Feb 28
        ("2026-01-31", MONTHLY, "2026-03-30"),  # back to the 31st after February
        ("2026-01-15", MONTHLY, "2026-02-14"),
        ("2026-01-15", QUARTERLY, "2026-02-15"),  # right day, wrong month
        ("2026-01-15", YEARLY, "2026-07-15"),
        ("2024-02-29", YEARLY, "2025-03-01"),
        ("2024-02-29", YEARLY, "2028-02-28"),  # leap year again: the 29th
    ],
)
def test_a_date_off_the_schedule_is_not_a_bill_date(anchor, frequency, when):
    with pytest.raises(NotABillDate):
        index_of_bill_date(d(anchor), frequency, d(when))


def test_not_a_bill_date_names_the_date_the_schedule_and_its_first_bill_dates():
    with pytest.raises(NotABillDate) as refused:
        index_of_bill_date(d("2026-01-31"), MONTHLY, d("2026-02-27"))
    message = str(refused.value)
    assert "2026-02-27 is not a bill date of a monthly schedule anchored at 2026-01-31" in message
    assert "2026-01-31, 2026-02-28, 2026-03-31, ..." in message


# -- Service periods -----------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "frequency", "timing", "index", "bill_on", "start", "end"),
    [
        # advance: D bills [D, next bill date - 1]
        ("2026-01-01", MONTHLY, ADVANCE, 0, "2026-01-01", "2026-01-01", "2026-01-31"),
        ("2026-01-31", MONTHLY, ADVANCE, 1, "2026-02-28", "2026-02-28", "2026-03-30"),
        ("2026-01-31", MONTHLY, ADVANCE, 0, "2026-01-31", "2026-01-31", "2026-02-27"),
        ("2026-01-01", QUARTERLY, ADVANCE, 1, "2026-04-01", "2026-04-01", "2026-06-30"),
        ("2024-02-29", YEARLY, ADVANCE, 0, "2024-02-29", "2024-02-29", "2025-02-27"),
        # arrears: D bills [previous bill date, D - 1]
        ("2026-01-01", MONTHLY, ARREARS, 1, "2026-02-01", "2026-01-01", "2026-01-31"),
        ("2026-01-31", MONTHLY, ARREARS, 2, "2026-03-31", "2026-02-28", "2026-03-30"),
        ("2026-01-01", QUARTERLY, ARREARS, 1, "2026-04-01", "2026-01-01", "2026-03-31"),
        ("2026-01-01", YEARLY, ARREARS, 1, "2027-01-01", "2026-01-01", "2026-12-31"),
    ],
)
def test_a_bill_date_bills_its_service_period(
    anchor, frequency, timing, index, bill_on, start, end
):
    assert bill_date(d(anchor), frequency, index) == d(bill_on)
    assert service_period(d(anchor), frequency, timing, index) == Period(d(start), d(end))


def test_a_period_cannot_end_before_it_starts():
    with pytest.raises(InvalidPeriod, match=r"ends \(2026-01-31\) before it starts \(2026-02-01\)"):
        Period(d("2026-02-01"), d("2026-01-31"))


def test_a_one_day_period_is_a_period():
    assert Period(d("2026-02-01"), d("2026-02-01")).days == 1


@pytest.mark.parametrize(
    ("day", "inside"),
    [("2025-12-31", False), ("2026-01-01", True), ("2026-01-31", True), ("2026-02-01", False)],
)
def test_a_period_contains_its_first_and_last_day(day, inside):
    january = Period(d("2026-01-01"), d("2026-01-31"))
    assert (d(day) in january) is inside
    assert january.days == 31
    assert str(january) == "2026-01-01..2026-01-31"


# -- Properties ----------------------------------------------------------------

anchors = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
frequencies = st.sampled_from(list(Frequency))
timings = st.sampled_from(list(Timing))
indexes = st.integers(min_value=-600, max_value=600)
moderate = settings(max_examples=300, deadline=None)


@moderate
@given(anchor=anchors, frequency=frequencies, index=indexes)
def test_bill_dates_increase_with_their_index(anchor, frequency, index):
    assert bill_date(anchor, frequency, index) < bill_date(anchor, frequency, index + 1)


@moderate
@given(anchor=anchors, frequency=frequencies, index=indexes)
def test_the_index_of_the_i_th_bill_date_is_i(anchor, frequency, index):
    assert index_of_bill_date(anchor, frequency, bill_date(anchor, frequency, index)) == index


@moderate
@given(anchor=anchors, frequency=frequencies, when=anchors)
def test_a_date_is_a_bill_date_exactly_when_its_month_and_day_fit_the_schedule(
    anchor, frequency, when
):
    months = (when.year - anchor.year) * 12 + (when.month - anchor.month)
    month_length = calendar.monthrange(when.year, when.month)[1]
    on_schedule = months % frequency.months == 0 and when.day == min(anchor.day, month_length)
    if on_schedule:
        index = index_of_bill_date(anchor, frequency, when)
        assert bill_date(anchor, frequency, index) == when
    else:
        with pytest.raises(NotABillDate):
            index_of_bill_date(anchor, frequency, when)


@moderate
@given(anchor=anchors, frequency=frequencies, timing=timings, index=indexes)
def test_consecutive_service_periods_tile_without_gap_or_overlap(anchor, frequency, timing, index):
    this = service_period(anchor, frequency, timing, index)
    following = service_period(anchor, frequency, timing, index + 1)
    assert this.end + timedelta(days=1) == following.start
    assert this.start <= this.end


@moderate
@given(anchor=anchors, frequency=frequencies, timing=timings, index=indexes)
def test_the_bill_date_starts_an_advance_period_and_follows_an_arrears_one(
    anchor, frequency, timing, index
):
    billed_on = bill_date(anchor, frequency, index)
    period = service_period(anchor, frequency, timing, index)
    if timing is ADVANCE:
        assert period.start == billed_on
    else:
        assert period.end + timedelta(days=1) == billed_on


@moderate
@given(anchor=anchors, frequency=frequencies, index=indexes)
def test_every_bill_dates_day_is_the_anchor_day_or_the_last_day_of_a_short_month(
    anchor, frequency, index
):
    when = bill_date(anchor, frequency, index)
    month_length = calendar.monthrange(when.year, when.month)[1]
    assert when.day == min(anchor.day, month_length)
    months = (when.year - anchor.year) * 12 + (when.month - anchor.month)
    assert months == index * frequency.months
