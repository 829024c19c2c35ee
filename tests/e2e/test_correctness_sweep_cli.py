"""Issue 12, the correctness sweep: what a new user meets when a name, a date or an
option is not what they meant, and the `--json` a script reads, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from application.shared.app import Billing
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


def strict_group_document(quarantine_above: str = "500.00") -> dict[str, Any]:
    return {
        "bill_groups": [
            {"id": "strict", "quarantine_above": quarantine_above, "reject_negative": True}
        ],
        "accounts": [
            account("BIG", package("office", "900.00"), bill_group="strict"),
            account("FINE", package("office", "100.00"), bill_group="strict"),
        ],
    }


def test_show_drafts_tells_quarantined_invoices_from_drafts_and_a_filter_shows_its_reason(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "accounts.json").write_text(json.dumps(strict_group_document()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31",
           "--no-render")  # fmt: skip

    drafts = cli.ok("run", "execute", "jan", "--show-drafts").stdout
    rows = {line.split()[1]: line.split()[2] for line in drafts.splitlines() if "INV-" in line}
    assert "review" in drafts
    assert rows == {"BIG": "quarantined", "FINE": "draft"}, drafts

    rejected = cli.json("invoice", "reject", "--run", "jan", "--status", "quarantined",
                        "--reason", "not ordered", "--json")  # fmt: skip
    assert [(i["review_status"], i["reason"]) for i in rejected["invoices"]] == [
        ("rejected", "not ordered")
    ]


def test_a_due_one_off_schedule_lists_the_run_it_is_about_to_queue(cli: Cli) -> None:
    added = cli.json("schedule", "add", "jan-rerun", "--every", "once", "--at",
                     "2026-02-01T06:00:00Z", "--period-start", "2026-01-01",
                     "--period-end", "2026-01-31", "--no-render", "--json")  # fmt: skip
    assert added["next_run_id"] == "jan-rerun-2026-02-01" and added["due"] is True

    [listed] = cli.json("schedule", "list", "--json")
    assert (listed["next_run_id"], listed["due"]) == ("jan-rerun-2026-02-01", True)
    assert listed["next_period"] == {"start": "2026-01-01", "end": "2026-01-31"}
    table = cli.ok("schedule", "list").stdout
    assert "jan-rerun-2026-02-01" in table and "due now" in table

    cli.ok("scheduler", "--once", "--json")
    [done] = cli.json("schedule", "list", "--json")
    assert (done["next_run_id"], done["due"]) == (None, False)  # queued: nothing next


def test_importing_a_bill_group_change_counts_it_as_changed(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(strict_group_document()))
    first = cli.json("import", "accounts.json", "--json")
    assert (first["bill_groups_added"], first["bill_groups_changed"]) == (1, 0)

    path.write_text(json.dumps(strict_group_document(quarantine_above="800.00")))
    changed = cli.ok("import", "accounts.json").stdout
    assert "2 unchanged; 0 bill groups added, 1 changed;" in " ".join(changed.split())
    again = cli.json("import", "accounts.json", "--json")
    assert (again["bill_groups_added"], again["bill_groups_changed"], again["events"]) == (0, 0, 0)


def test_run_check_reads_only_the_selected_accounts_and_families_and_skips_cancelled_runs(
    cli: Cli, tmp_path: Path
) -> None:
    document = {
        "base_currency": "EUR",
        "exchange_rates": [{"base": "USD", "quote": "EUR", "rate": "0.9", "date": "2026-01-01"}],
        "accounts": [
            account("ACME-001", package(), bill_group="retail"),
            {**account("ACME-KID", package(), bill_group="retail", email=None),
             "invoicer": "ACME-001"},
            account("USD-001", package(), bill_group="us", currency="USD"),
            account("JPY-001", package(), bill_group="japan", currency="JPY"),
        ],
    }  # fmt: skip
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    for run_id, group in (("retail-jan", "retail"), ("us-jan", "us"), ("old", "retail")):
        cli.ok("run", "schedule", run_id, "--period-start", "2026-01-01",
               "--period-end", "2026-01-31", "--group", group)  # fmt: skip
    cli.ok("run", "cancel", "old", "--discard", "--reason", "scheduled by mistake")

    retail = cli.json("run", "check", "retail-jan", "--json")
    assert retail["errors"] == [], "JPY is no retail account's currency"
    checks = {finding["check"]: finding for finding in retail["warnings"]}
    assert "no_invoice_email" not in checks, "a family member needs no email"
    assert "overlapping_run" not in checks, "the cancelled run bills nothing"

    us = cli("run", "check", "us-jan", "--json")
    assert us.returncode == 0, us.stdout
    everybody = cli("run", "schedule", "all-jan", "--period-start", "2026-01-01",
                    "--period-end", "2026-01-31")  # fmt: skip
    assert everybody.returncode == 0
    missing = cli("run", "check", "all-jan", "--json")
    assert missing.returncode == 1
    [error] = json.loads(missing.stdout)["errors"]
    assert error["check"] == "missing_rate" and "JPY/EUR" in error["message"]


def test_invoices_are_not_rendered_under_the_built_in_demo_seller_outside_the_demo(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("ACME-001", package()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    unset = Cli(
        cwd=cli.cwd,
        env={k: v for k, v in cli.env.items() if k != "BILLRUN_SELLER_IBAN"},
    )

    checked = unset("run", "check", "jan", "--json")
    assert checked.returncode == 1
    [error] = json.loads(checked.stdout)["errors"]
    assert error["check"] == "demo_seller"
    assert error["message"] == (
        "invoices would go out under the built-in demo seller's IBAN: set "
        "BILLRUN_SELLER_IBAN (outside `billrun demo`)"
    )
    head = store.queries.head()
    refused = unset("run", "execute", "jan", "--json")
    assert refused.returncode == 2 and "demo seller's IBAN" in refused.stderr
    assert store.queries.head() == head, "refused before it started: nothing written"

    assert cli.json("run", "check", "jan", "--json")["errors"] == []  # a seller of its own
