"""Issue 12, the correctness sweep: what a new user meets when a name, a date or an
option is not what they meant, and the `--json` a script reads, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from application.billing import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def test_a_mistyped_group_or_account_is_refused_when_scheduling_naming_close_matches(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        account("ACME-001", package(), bill_group="retail"),
        account("ACME-002", package(), bill_group="wholesale"),
    )
    cli.ok("import", "accounts.json")
    head = store.queries.head()

    run = cli("run", "schedule", "jan", "--period-start", "2026-01-01",
              "--period-end", "2026-01-31", "--group", "retial")  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--group: no bill group 'retial'" in run.stderr
    assert "did you mean 'retail'?" in run.stderr and "nothing written" in run.stderr

    schedule = cli("schedule", "add", "monthly", "--every", "monthly",
                   "--group", "retail", "--account", "ACME-01")  # fmt: skip
    assert schedule.returncode == 2, schedule.stdout + schedule.stderr
    assert "--account: no account 'ACME-01'" in schedule.stderr
    assert "did you mean 'ACME-001' or 'ACME-002'?" in schedule.stderr
    assert "Traceback" not in run.stderr + schedule.stderr
    assert store.queries.head() == head  # refused: nothing written

    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01",
           "--period-end", "2026-01-31", "--group", "retail")  # fmt: skip


def squeezed(text: str) -> str:
    """stderr without the box rich draws around a usage error, on one line."""
    return " ".join(text.replace("│", " ").split())


def test_an_impossible_date_is_called_not_a_date_rather_than_a_format_error(
    cli: Cli, store: Billing
) -> None:
    head = store.queries.head()
    refused = cli("run", "schedule", "feb", "--period-start", "2026-02-01",
                  "--period-end", "2026-02-30")  # fmt: skip
    assert refused.returncode == 2
    message = squeezed(refused.stderr)
    assert "'--period-end': \"2026-02-30\" is not a date: February 2026 has 28 days" in message
    assert "does not match the format" not in message
    rate = cli("rates", "set", "EUR", "USD", "1.08", "--date", "2026-04-31")
    assert rate.returncode == 2
    assert '"2026-04-31" is not a date: April 2026 has 30 days' in squeezed(rate.stderr)
    shown = cli("run", "status", "feb", "--as-of", "2026-02-30T10:00:00Z")
    assert shown.returncode == 2
    assert '--recorded-at: "2026-02-30" is not a date: February 2026 has 28 days' in (
        squeezed(shown.stderr)
    )
    assert store.queries.head() == head  # refused: nothing written


def test_recording_time_options_say_what_they_mean_in_their_help(cli: Cli) -> None:
    for command in (("run", "status"), ("account", "show"), ("invoice", "show")):
        shown = squeezed(cli.ok(*command, "--help").stdout)
        assert "--recorded-at" in shown and "Recording time, not a business date" in shown


def test_commands_that_change_one_thing_print_json_when_asked(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, account("ACME-001", package()), account("ACME-002", package()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")

    assert cli.json("run", "describe", "jan", "January, key accounts", "--json") == {
        "run_id": "jan", "description": "January, key accounts", "changed": True,
    }  # fmt: skip
    assert cli.json("run", "describe", "jan", "January, key accounts", "--json")["changed"] is False
    assert cli.json("account", "invoicer", "ACME-002", "ACME-001", "--json") == {
        "account": "ACME-002", "invoicer": "ACME-001", "changed": True,
    }  # fmt: skip
    assert cli.json("account", "invoicer", "ACME-002", "--none", "--json") == {
        "account": "ACME-002", "invoicer": None, "changed": True,
    }  # fmt: skip
    assert cli.json("account", "terms", "ACME-001", "--net", "14", "--json") == {
        "account": "ACME-001", "payment_terms": {"days": 14, "source": "account"},
        "changed": True,
    }  # fmt: skip
    autopay = cli.ok("account", "autopay", "ACME-001", "--token", "tok_secret_visa", "--json")
    assert json.loads(autopay.stdout) == {"account": "ACME-001", "autopay": True, "changed": True}
    assert "tok_secret_visa" not in autopay.stdout
    assert cli.json("rates", "base", "EUR", "--json") == {"base_currency": "EUR", "changed": True}
    assert cli.json("rates", "base", "EUR", "--json") == {"base_currency": "EUR", "changed": False}


def test_history_without_a_subject_streams_the_whole_log_in_commit_order(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("ACME-001", package()), account("ACME-002", package()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan", "--json")

    whole = [json.loads(line) for line in cli.ok("history", "--all", "--jsonl").stdout.splitlines()]
    ids = [entry["notification_id"] for entry in whole]
    assert ids == list(range(1, store.queries.head() + 1)), "every event, in commit order"
    assert {"AccountOpened", "RunScheduled", "PackageBilled", "RunCompleted"} <= {
        entry["event"] for entry in whole
    }
    plain = cli.ok("history", "--jsonl").stdout
    assert [json.loads(line) for line in plain.splitlines()] == whole  # no filter: the log
    resumed = cli.ok("history", "--all", "--from", "5", "--jsonl").stdout.splitlines()
    assert [json.loads(line) for line in resumed] == whole[4:]
    assert cli.json("history", "--from", "5", "--json") == whole[4:]

    mixed = cli("history", "--run", "jan", "--from", "5", "--jsonl")
    assert mixed.returncode == 2 and mixed.stdout == ""
    assert "--from N is for the whole log, not with --run" in mixed.stderr
    assert "whole log" in " ".join(cli.ok("history", "--help").stdout.split())
