"""`run schedule` and `schedule add` take a run's settings by the same options: one
declaration (entrypoints/run_options.py), the same names, types and defaults."""

from __future__ import annotations

import inspect
import typing

from entrypoints import run_options
from entrypoints.commands.runs import run_schedule
from entrypoints.commands.schedules import schedule_add

SETTINGS_OPTIONS = {
    name: value
    for name, value in vars(run_options).items()
    if typing.get_origin(value) is typing.Annotated
}


def _settings_parameters(command: object) -> dict[str, tuple[object, object]]:
    hints = typing.get_type_hints(command, include_extras=True)
    return {
        name: (hints[name], parameter.default)
        for name, parameter in inspect.signature(command).parameters.items()  # type: ignore[arg-type]
        if any(hints[name] is option for option in SETTINGS_OPTIONS.values())
    }


def test_both_commands_declare_every_run_settings_option_once_with_the_same_defaults() -> None:
    scheduled = _settings_parameters(run_schedule)
    added = _settings_parameters(schedule_add)
    assert len(scheduled) == len(SETTINGS_OPTIONS)
    assert scheduled == added
