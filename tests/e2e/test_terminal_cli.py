"""`billrun` on an 80-column terminal and piped, as a new user first meets it:
tables keep every id and amount whole, `--help` shows every option name, and
progress bars appear only on a terminal, once work has started.

"On a terminal" is a pseudo-terminal 80 columns wide (Cli.on_terminal); piped is
the `cli` fixture's plain subprocess with COLUMNS=80 exported.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli

ACCOUNTS = [
    account(
        "NORTHWIND-TRADERS-0001",
        package("office", "123456.78", start_date="2020-01-01", usage_rate="0.25"),
    ),
    account(
        "CONTOSO-PHARMA-0002",
        package("desk", "9876543", start_date="2020-01-01"),
        currency="JPY",
    ),
]


def world(cli: Cli, tmp_path: Path) -> dict[str, Any]:
    """Two accounts billed for January 2020, with a charge, usage and a payment."""
    write_import_file(tmp_path, *ACCOUNTS)
    cli.ok("import", "accounts.json")
    cli.ok("charge", "add", "NORTHWIND-TRADERS-0001", "--id", "setup-fee-2020",
           "--description", "Set-up of the meeting rooms and the reception desk",
           "--amount", "4567.89", "--date", "2020-01-10")  # fmt: skip
    cli.ok("usage", "record", "NORTHWIND-TRADERS-0001", "office", "1234.5",
           "--id", "printing-2020-01", "--date", "2020-01-12")  # fmt: skip
    cli.ok("run", "schedule", "2020-01-northwind", "--period-start", "2020-01-01",
           "--period-end", "2020-01-31")  # fmt: skip
    cli.ok("run", "execute", "2020-01-northwind", "--json")
    cli.ok("payment", "record", "NORTHWIND-TRADERS-0001", "--id", "BANK-2020-000123",
           "--amount", "100000.00", "--date", "2020-02-10")  # fmt: skip
    cli.ok("rates", "set", "EUR", "JPY", "161.234567", "--date", "2020-01-01")
    cli.ok("schedule", "add", "northwind-monthly-close", "--every", "once",
           "--period-start", "2020-02-01", "--period-end", "2020-02-29")  # fmt: skip
    return {"invoices": cli.json("invoice", "list", "--json")}


def whole(token: str, text: str) -> bool:
    """`token` appears in `text` with nothing of it cut or wrapped away."""
    return re.search(rf"(?<![\w.-]){re.escape(token)}(?![\w.-])", text) is not None


LIST_COMMANDS: dict[str, tuple[str, ...]] = {
    "invoice list": ("invoice", "list"),
    "payment list": ("payment", "list"),
    "ar aging": ("ar", "aging", "--as-of", "2020-04-30"),
    "run list": ("run", "list"),
    "usage list": ("usage", "list", "NORTHWIND-TRADERS-0001"),
    "charge list": ("charge", "list", "NORTHWIND-TRADERS-0001"),
    "account show": ("account", "show", "NORTHWIND-TRADERS-0001"),
    "projections status": ("projections", "status"),
    "contract list": ("contract", "list", "NORTHWIND-TRADERS-0001"),
    "rates list": ("rates", "list"),
    "schedule list": ("schedule", "list"),
}


@pytest.mark.parametrize("how", ["terminal", "piped"])
def test_every_list_command_at_80_columns_keeps_ids_and_amounts_whole(
    cli: Cli, tmp_path: Path, how: str
) -> None:
    facts = world(cli, tmp_path)
    cli.env["COLUMNS"] = "80"
    run: Callable[..., subprocess.CompletedProcess[str]] = (
        cli.on_terminal if how == "terminal" else cli
    )
    invoices = facts["invoices"]
    expected = {
        "invoice list": [
            *(i["account"] for i in invoices),
            *(i["total"] for i in invoices),
            *(i["number"] if isinstance(i["number"], str) else "" for i in invoices),
        ],
        "payment list": ["NORTHWIND-TRADERS-0001", "100000.00", "2020-02-10"],
        "ar aging": ["NORTHWIND-TRADERS-0001", "CONTOSO-PHARMA-0002"],
        "run list": ["2020-01-northwind", "2020-01-01", "2020-01-31"],
        "usage list": ["printing-2020-01", "1234.5", "2020-01-12"],
        "charge list": ["setup-fee-2020", "4567.89", "2020-01-10"],
        "account show": ["NORTHWIND-TRADERS-0001", "123456.78", "2020-01-01"],
        "projections status": [],
        "contract list": [],
        "rates list": ["161.234567", "2020-01-01"],
        "schedule list": ["northwind-monthly-close"],
    }

    for name, args in LIST_COMMANDS.items():
        result = run(*args)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        shown = result.stdout
        assert "…" not in shown, f"{name} cut a cell at 80 columns ({how}):\n{shown}"
        for token in filter(None, expected[name]):
            assert whole(token, shown), f"{name} ({how}) lost {token!r}:\n{shown}"
        if how == "terminal":
            widest = max(len(line) for line in shown.splitlines())
            assert widest <= 80, f"{name} is {widest} columns wide on an 80-column terminal"


def test_piped_tables_print_one_line_per_row_however_wide(cli: Cli, tmp_path: Path) -> None:
    world(cli, tmp_path)
    cli.env["COLUMNS"] = "80"

    shown = cli.ok("charge", "list", "NORTHWIND-TRADERS-0001").stdout

    (row,) = [line for line in shown.splitlines() if "setup-fee-2020" in line]
    assert "Set-up of the meeting rooms and the reception desk" in row
    assert whole("4567.89", row)


def test_help_at_80_columns_shows_every_option_name_whole(cli: Cli) -> None:
    result = cli.on_terminal("run", "schedule", "--help")

    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    for option in ("--period-start", "--approval-required", "--collect-payments",
                   "--no-collect-payments", "--collection-type", "--disabled"):  # fmt: skip
        assert whole(option, result.stdout), f"{option} is not shown whole:\n{result.stdout}"
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_a_piped_run_prints_no_progress_bar(cli: Cli, tmp_path: Path) -> None:
    world(cli, tmp_path)
    cli.ok("run", "schedule", "2020-02", "--period-start", "2020-02-01",
           "--period-end", "2020-02-29")  # fmt: skip

    result = cli.ok("run", "execute", "2020-02")

    assert "billing accounts" not in result.stderr
    assert "━" not in result.stderr


def test_a_run_on_a_terminal_shows_its_progress_bar(cli: Cli, tmp_path: Path) -> None:
    world(cli, tmp_path)
    cli.ok("run", "schedule", "2020-02", "--period-start", "2020-02-01",
           "--period-end", "2020-02-29")  # fmt: skip

    result = cli.on_terminal("run", "execute", "2020-02")

    assert result.returncode == 0, result.stderr
    assert "run 2020-02: billing accounts" in result.stderr
    assert "2/2" in result.stderr


def test_a_run_refused_before_its_work_starts_prints_its_error_alone(
    cli: Cli, tmp_path: Path
) -> None:
    world(cli, tmp_path)
    cli.ok("run", "schedule", "2020-02", "--period-start", "2020-02-01",
           "--period-end", "2020-02-29")  # fmt: skip
    cli.ok("run", "cancel", "2020-02", "--discard", "--reason", "scheduled by mistake")

    result = cli.on_terminal("run", "execute", "2020-02")

    assert result.returncode == 2
    assert "error:" in result.stderr
    assert "billing accounts" not in result.stderr
    assert "0/?" not in result.stderr


def test_the_readme_s_worker_dash_v_is_accepted(cli: Cli) -> None:
    for args in (("worker", "-v", "--help"), ("scheduler", "-v", "--help")):
        result = cli(*args)

        assert result.returncode == 0, result.stderr
        assert "--verbose" in result.stdout


def test_verbose_documents_log_no_font_subsetting_and_warn_of_fonttools_once(
    cli: Cli, tmp_path: Path
) -> None:
    world(cli, tmp_path)

    result = cli.ok("-v", "run", "documents", "2020-01-northwind", "--pdf")

    # fontTools' subsetter logs each table it prunes or subsets, WeasyPrint each
    # layout step: neither says anything to an operator.
    for noise in ("subsetted", "pruned", "Retaining", "Step 1 - ", "Step 2 - "):
        assert noise not in result.stderr
    assert result.stderr.count("libharfbuzz-subset is not installed") <= 1
