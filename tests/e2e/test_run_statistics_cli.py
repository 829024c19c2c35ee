"""Run statistics as an operator reads them: totals labelled net, tax and gross
per currency (and in the base currency), account figures that add up, and the
execution and workflow states told apart (docs/architecture.md, "Run statistics")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def taxed(record: dict[str, Any], rate: str = "20") -> dict[str, Any]:
    return {**record, "tax_rate": rate}


def schedule_and_execute(cli: Cli, *selection: str) -> None:
    cli.ok(
        "run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31",
        *selection,
    )  # fmt: skip
    cli.ok("run", "execute", "jan")


def assert_figures_add_up(figures: dict[str, Any]) -> None:
    assert figures["accounts_seen"] == (
        figures["accounts_billed"] + figures["accounts_skipped"] + figures["accounts_parked"]
    ), figures


def test_run_totals_show_net_tax_and_gross_per_currency_and_in_the_base_currency(
    cli: Cli, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        taxed(account("A", package("office", "300.00"))),
        taxed(account("B", package("office", "300.00"))),
        taxed(account("US", package("desk", "125.00"), currency="USD")),
    )
    cli.ok("import", "accounts.json")
    cli.ok("rates", "set", "EUR", "USD", "1.25", "--date", "2026-01-01")
    cli.ok("rates", "base", "EUR")
    schedule_and_execute(cli)

    status = cli.json("run", "status", "jan", "--json")
    # Two invoices of 300.00 + 20 % are 720.00, not "total EUR 600.00".
    assert status["totals"] == {
        "EUR": {"net": "600.00", "tax": "120.00", "gross": "720.00"},
        "USD": {"net": "125.00", "tax": "25.00", "gross": "150.00"},
    }
    assert status["base_totals"] == {"EUR": {"net": "700.00", "tax": "140.00", "gross": "840.00"}}
    listed = cli.json("run", "list", "--json")
    assert listed[0]["totals"] == status["totals"]
    report = cli.json("run", "report", "jan", "--json")
    assert (report["totals"], report["base_totals"]) == (status["totals"], status["base_totals"])

    table = cli.ok("run", "status", "jan").stdout
    assert "720.00 EUR gross" in table and "(net 600.00, tax 120.00)" in table
    assert "840.00 EUR gross" in table  # the base currency's
    assert "gross" in cli.ok("run", "report", "jan").stdout


def test_run_figures_count_the_selection_and_add_up(cli: Cli, tmp_path: Path) -> None:
    write_import_file(
        tmp_path,
        account("A", package("office", "300.00"), bill_group="north"),
        account("B", package("office", "300.00", start_date="2026-03-01"), bill_group="north"),
        account("HQ", package("office", "300.00"), bill_group="north"),
        account("SHOP", package("office", "300.00"), bill_group="north"),
        account("C", package("office", "300.00"), bill_group="south"),
        account("D", package("office", "300.00"), bill_group="south"),
    )
    cli.ok("import", "accounts.json")
    cli.ok("account", "invoicer", "SHOP", "HQ")
    schedule_and_execute(cli, "--group", "north")

    status = cli.json("run", "status", "jan", "--json")
    # A, B, HQ and its member SHOP: the south group is not in scope.
    assert status["accounts_in_scope"] == 4
    assert status["accounts_seen"] == status["accounts_in_scope"]
    assert_figures_add_up(status)
    assert (status["accounts_billed"], status["accounts_skipped"]) == (3, 1)  # B starts in March

    accounts = cli.json("run", "report", "jan", "--json")["accounts"]
    assert (accounts["in_scope"], accounts["seen"]) == (4, 4)
    assert (
        accounts["seen"]
        == accounts["billed"] + accounts["skipped_nothing_due"] + accounts["parked"]
    )
    executed = cli.json("run", "execute", "jan", "--json")
    assert_figures_add_up(executed["statistics"])
    assert executed["accounts_in_scope"] == 4


def test_run_status_tells_the_execution_from_the_workflow(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, account("A", package()))
    cli.ok("import", "accounts.json")
    schedule_and_execute(cli)

    status = cli.json("run", "status", "jan", "--json")
    assert (status["status"], status["workflow_state"]) == ("completed", "drafts_ready")
    past = cli.json("run", "status", "jan", "--version", "3", "--json")
    assert "workflow_state" in past and past["version"] == 3
    table = cli.ok("run", "status", "jan").stdout
    assert "completed (billing done)" in table
    assert "review the invoices, then" in table
