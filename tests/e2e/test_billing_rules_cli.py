"""Billing rules as a new user meets them through `billrun` (issue 12, "Billing
rules"): invoices closed by a later run, category runs, discarded charges and
bill dates no run covered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import account, package
from tests.e2e.conftest import Cli


def imported(cli: Cli, tmp_path: Path, *accounts: dict[str, Any], **document: Any) -> None:
    (tmp_path / "accounts.json").write_text(json.dumps({**document, "accounts": list(accounts)}))
    cli.ok("import", "accounts.json")


def billed(cli: Cli, run_id: str, start: str, end: str, *options: str) -> Any:
    cli.ok("run", "schedule", run_id, "--period-start", start, "--period-end", end, *options)
    return cli.json("run", "execute", run_id, "--json")


def test_an_invoice_a_later_run_closes_is_issued_and_due_from_that_run(
    cli: Cli, tmp_path: Path
) -> None:
    imported(
        cli, tmp_path,
        account("CYC-001", package("desk", "100.00", start_date="2020-01-01"), bill_group="cycle"),
        bill_groups=[{"id": "cycle", "delivery": "none", "close_type": "user_bill_cycle"}],
    )  # fmt: skip
    billed(cli, "2020-01", "2020-01-01", "2020-01-31")  # opens the invoice, leaves it open
    billed(cli, "2020-02", "2020-02-01", "2020-02-29")  # the next cycle closes it

    closed = [
        i for i in cli.json("invoice", "list", "--account", "CYC-001", "--json")
        if i["status"] != "open"
    ]  # fmt: skip
    shown = cli.json("invoice", "show", closed[0]["id"], "--json")
    balance = cli.json("account", "balance", "CYC-001", "--json")

    # Issued by the February run (posting 2020-02-29), due 30 days later: not the
    # January run's posting date, which would make it due before it was issued.
    assert [(i["posting_date"], i["due_date"]) for i in closed] == [("2020-02-29", "2020-03-30")]
    assert (shown["posting_date"], shown["due_date"]) == ("2020-02-29", "2020-03-30")
    receivable = json.dumps(balance)  # posted to receivables with the same dates
    assert "2020-03-30" in receivable and "2020-03-01" not in receivable, balance


def test_a_category_run_sends_no_zero_invoice_to_accounts_with_nothing_in_the_category(
    cli: Cli, tmp_path: Path
) -> None:
    imported(
        cli, tmp_path,
        account("RENT-001", package("flat", "900.00", start_date="2020-01-01", category="rent")),
        account("DESK-002", package("desk", "100.00", start_date="2020-01-01")),
        # Quarterly rent billed to January, next due in February: the run covers
        # it and it has nothing due, so a zero invoice.
        account("RENT-003", package("shed", "300.00", "quarterly", start_date="2019-11-01",
                                    category="rent", next_bill_date="2020-02-01")),
    )  # fmt: skip

    billed(cli, "rent", "2020-01-01", "2020-01-31", "--category", "rent",
           "--no-usage", "--no-charges")  # fmt: skip

    invoices = cli.json("invoice", "list", "--run", "rent", "--json")
    assert sorted((i["account"], i["total"]) for i in invoices) == [
        ("RENT-001", "900.00"), ("RENT-003", "0.00"),
    ]  # fmt: skip
    assert cli.json("invoice", "list", "--account", "DESK-002", "--json") == []


def squeezed(text: str) -> str:
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def test_charges_and_usage_of_a_discarded_run_show_as_written_off_not_billed(
    cli: Cli, tmp_path: Path
) -> None:
    imported(cli, tmp_path, account("ACME-001", package("desk", "100.00", start_date="2020-01-01")))
    cli.ok("charge", "add", "ACME-001", "--id", "setup", "--description", "Setup",
           "--amount", "50.00", "--date", "2020-01-10")  # fmt: skip
    cli.ok("charge", "add", "ACME-001", "--id", "later", "--description", "Later",
           "--amount", "5.00", "--date", "2020-02-10")  # fmt: skip
    cli.ok("usage", "record", "ACME-001", "desk", "3", "--id", "u1", "--date", "2020-01-12",
           "--unit-price", "2.00")  # fmt: skip
    billed(cli, "2020-01", "2020-01-01", "2020-01-31")

    cli.ok("run", "cancel", "2020-01", "--discard", "--reason", "wrong prices")

    wide = Cli(cwd=cli.cwd, env={**cli.env, "COLUMNS": "200"})
    charges = cli.json("charge", "list", "ACME-001", "--json")
    assert [(c["charge_id"], c["billed"], c["written_off"], c["written_off_by_run"])
            for c in charges] == [
        ("setup", True, True, "2020-01"), ("later", False, False, None),
    ]  # fmt: skip
    table = squeezed(wide.ok("charge", "list", "ACME-001").stdout)
    assert (
        "setup 2020-01-10 Setup charges 50.00 0 (account) written off (run 2020-01 discarded) "
        "later 2020-02-10 Later charges 5.00 0 (account) no"
    ) in table, table
    usage = cli.json("usage", "list", "ACME-001", "--json")
    assert [(u["usage_id"], u["written_off"], u["written_off_by_run"]) for u in usage] == [
        ("u1", True, "2020-01")
    ]
    assert "written off (run 2020-01 discarded)" in squeezed(
        wide.ok("usage", "list", "ACME-001").stdout
    )
    # Nothing bills a written-off charge again, and --unbilled lists only what will be.
    assert [c["charge_id"] for c in cli.json("charge", "list", "ACME-001", "--unbilled", "--json")
            ] == ["later"]  # fmt: skip


def test_a_bill_date_no_run_covered_is_reported_owed_and_billed_by_a_catch_up_run(
    cli: Cli, tmp_path: Path
) -> None:
    imported(
        cli, tmp_path,
        account("ACME-001", package("office", "100.00", start_date="2020-01-01")),
        # Starts in March, quarterly: its only bill date up to May is March 1.
        account("QTR-002", package("rack", "300.00", "quarterly", start_date="2020-03-01")),
    )  # fmt: skip
    billed(cli, "2020-01", "2020-01-01", "2020-01-31")
    billed(cli, "2020-02", "2020-02-01", "2020-02-29")
    # March is never run.
    cli.ok("run", "schedule", "2020-04", "--period-start", "2020-04-01",
           "--period-end", "2020-04-30")  # fmt: skip

    check = cli.json("run", "check", "2020-04", "--json")
    stranded = [w for w in check["warnings"] if w["check"] == "stranded_bill_date"]
    assert [(w["count"], w["accounts"]) for w in stranded] == [
        (2, ["ACME-001/office@2020-03-01", "QTR-002/rack@2020-03-01"])
    ]

    april = cli.json("run", "execute", "2020-04", "--json")
    assert april["statistics"]["stranded"] == 2
    assert cli.json("run", "status", "2020-04", "--json")["stranded_bill_dates"] == 2
    report = cli.json("run", "report", "2020-04", "--json")
    assert report["accounts"]["stranded_bill_dates"] == 2
    # April is billed; March stays owed; QTR-002, whose only due date is stranded,
    # gets no invoice of zero pretending it owes nothing.
    invoices = cli.json("invoice", "list", "--run", "2020-04", "--json")
    assert [(i["account"], i["total"]) for i in invoices] == [("ACME-001", "100.00")]
    shown = cli.json("account", "show", "ACME-001", "--json")
    assert [(p["next_bill_date"], p["owed_bill_dates"]) for p in shown["packages"]] == [
        ("2020-05-01", ["2020-03-01"])
    ]
    text = squeezed(cli.ok("account", "show", "ACME-001").stdout)
    assert "1 bill date(s) no run covered are owed, not billed: office 2020-03-01" in text

    may = billed(cli, "2020-05", "2020-05-01", "2020-05-31", "--catch-up")

    assert may["statistics"]["stranded"] == 0
    lines = [
        (invoice["account"], line["service_period_start"], line["service_period_end"],
         line["amount"])
        for invoice in cli.json("invoice", "list", "--run", "2020-05", "--json")
        for line in invoice["lines"]
    ]  # fmt: skip
    assert sorted(lines) == [
        ("ACME-001", "2020-03-01", "2020-03-31", "100.00"),  # each period its own line
        ("ACME-001", "2020-05-01", "2020-05-31", "100.00"),
        ("QTR-002", "2020-03-01", "2020-05-31", "300.00"),
    ]
    after = cli.json("account", "show", "ACME-001", "--json")
    assert [p["owed_bill_dates"] for p in after["packages"]] == [[]]
    assert cli.json("run", "status", "2020-05", "--json")["settings"]["catch_up"] is True
    again = cli.json("run", "check", "2020-05", "--json")
    assert not [w for w in again["warnings"] if w["check"] == "stranded_bill_date"]


def test_a_schedule_whose_runs_periods_would_leave_gaps_is_refused_and_nothing_is_written(
    cli: Cli,
) -> None:
    refused = cli("schedule", "add", "gappy", "--every", "monthly", "--day", "1",
                  "--period", "previous_day", "--at", "2020-05-01T06:00Z")  # fmt: skip

    assert refused.returncode == 2, refused
    assert (
        "a monthly schedule billing previous_day would leave gaps between its runs' periods"
        in squeezed(refused.stderr)
    ), refused.stderr
    assert "choose previous_month or current_month" in squeezed(refused.stderr)
    assert cli.json("schedule", "list", "--json") == []
    # A schedule that tiles, catching up, is taken: its runs carry the setting.
    cli.ok("schedule", "add", "monthly", "--every", "monthly", "--day", "1",
           "--at", "2020-05-01T06:00Z", "--catch-up")  # fmt: skip
    [added] = cli.json("schedule", "list", "--json")
    assert added["settings"]["catch_up"] is True, added
