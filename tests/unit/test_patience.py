"""How long a waiter of a shared run lets it go without a commit (`Patience`)."""

from __future__ import annotations

from application.runs.dispatch import Patience


def test_the_floor_until_a_gap_is_seen() -> None:
    assert Patience(15).of("r") == 15


def test_three_times_the_longest_gap_seen_once_it_passes_the_floor() -> None:
    patience = Patience(15)
    patience.saw_gap("r", 4.0)
    assert patience.of("r") == 15  # 12 s: the floor still holds
    patience.saw_gap("r", 6.0)
    patience.saw_gap("r", 1.0)  # a shorter gap later does not shrink it
    assert patience.of("r") == 18


def test_each_run_its_own_gaps() -> None:
    patience = Patience(1)
    patience.saw_gap("slow", 2.0)
    assert patience.of("slow") == 6
    assert patience.of("quick") == 1
