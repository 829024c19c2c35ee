"""`billrun schedule ...`, `billrun scheduler` and `billrun run disable|enable` as an
operator runs them: a one-off schedule queued and executed by one scheduler pass,
then visible in `billrun run list`."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from application.shared.app import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def test_a_schedule_is_queued_and_executed_by_the_scheduler(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A", package()), account("B", package()))
    cli.ok("import", "accounts.json")

    added = cli.json(
        "schedule", "add", "jan", "--every", "once",
        "--period-start", "2026-01-01", "--period-end", "2026-01-31", "--no-render", "--json",
    )  # fmt: skip
    assert added["created"] and added["every"] == "once"
    assert added["period"] == "2026-01-01..2026-01-31"
    run_id = f"jan-{datetime.fromisoformat(added['at']).date().isoformat()}"
    time.sleep(1.1)  # "now" has moved on: the same command still means the same schedule
    again = cli.json(
        "schedule", "add", "jan", "--every", "once",
        "--period-start", "2026-01-01", "--period-end", "2026-01-31", "--no-render", "--json",
    )  # fmt: skip
    assert not again["created"]  # the same terms: nothing new
    other = cli(
        "schedule", "add", "jan", "--every", "daily", "--period-start", "2026-01-01",
        "--period-end", "2026-01-31",
    )  # fmt: skip
    assert other.returncode == 2 and "recurring" not in other.stderr
    assert "cannot bill a fixed period" in other.stderr and "Traceback" not in other.stderr
    [listed] = cli.json("schedule", "list", "--json")
    assert listed["name"] == "jan" and listed["settings"]["render_invoices"] is False

    done = cli.json("scheduler", "--once", "--json")
    assert [q["run_id"] for q in done["queued"]] == [run_id]
    assert [(e["run_id"], e["outcome"]) for e in done["executed"]] == [(run_id, "completed")]
    assert cli.json("scheduler", "--once", "--json") == {"queued": [], "executed": []}

    [run] = cli.json("run", "list", "--json")
    assert run["run_id"] == run_id and run["status"] == "completed"
    assert run["schedule"] == "jan" and run["occurrence"] == added["at"]
    assert run["disabled"] is False and run["lease_holder"] is None
    assert run["invoices"] == 2
    listing = cli.ok("run", "list").stdout
    assert "schedule jan" in listing

    head = store.queries.head()
    refused = cli("run", "disable", run_id)
    assert refused.returncode == 2 and "completed" in refused.stderr
    assert store.queries.head() == head  # refused: nothing written

    cli.ok("schedule", "remove", "jan")
    assert cli.json("schedule", "list", "--json") == []
    gone = cli("schedule", "remove", "jan")
    assert gone.returncode == 2 and "no schedule" in gone.stderr


def test_a_queued_run_can_be_held_back_and_let_go(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, account("A", package()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "r", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    assert cli.json("run", "disable", "r", "--json") == {
        "run_id": "r", "disabled": True, "changed": True,
    }  # fmt: skip
    assert "already disabled" in cli.ok("run", "disable", "r").stdout
    assert cli.json("scheduler", "--once", "--json") == {"queued": [], "executed": []}
    [run] = cli.json("run", "list", "--json")
    assert run["status"] == "scheduled" and run["disabled"] is True and run["schedule"] is None
    assert "disabled" in cli.ok("run", "list").stdout

    cli.ok("run", "enable", "r")
    done = cli.json("scheduler", "--once", "--json")
    assert [(e["run_id"], e["outcome"]) for e in done["executed"]] == [("r", "completed")]
