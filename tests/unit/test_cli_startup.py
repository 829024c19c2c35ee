"""`billrun` starts without importing what the command it runs does not use.

The timing lives in bench/startup.py; these check the mechanism (sys.modules
and the help lines the top level repeats), which does not depend on load.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from entrypoints.cli import COMMANDS, load_command

HEAVY = ("weasyprint", "faststream", "nats", "eventsourcing", "psycopg", "pydantic")


def imported_by(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_importing_the_cli_imports_no_command_and_none_of_the_heavy_libraries() -> None:
    modules = imported_by("import entrypoints.cli")

    assert modules.isdisjoint(HEAVY), modules & set(HEAVY)
    assert not {"application", "domain", "infrastructure", "projections"} & modules


def test_the_schedule_and_relay_commands_start_without_faststream_or_weasyprint() -> None:
    modules = imported_by(
        "from entrypoints.cli import load_command\n"
        "for name in ('schedule', 'scheduler', 'relay', 'invoice', 'run'): load_command(name)"
    )

    assert "faststream" not in modules
    assert "weasyprint" not in modules


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_help_line_billrun_help_lists_is_the_commands_own(name: str) -> None:
    command = load_command(name)
    own = (command.short_help or command.help or "").strip().split("\n\n")[0]

    assert COMMANDS[name][2] == " ".join(own.split())
    assert isinstance(command, typer.core.TyperCommand | typer.core.TyperGroup)
