"""`billrun rates ...` and `billrun account invoicer ...` as an operator runs them:
a run refused for a missing rate, then one invoice for the family."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from application.billing.invoicers import assign_invoicer
from application.runs.executor import BillRunExecutor
from application.shared.app import Billing
from domain.runs.bill_run import BillRun
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def test_a_family_in_two_currencies_from_the_command_line(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        account("HQ", package("office", "100.00")),
        account("BRANCH", package("desk", "50.00"), currency="USD"),
    )
    cli.ok("import", "accounts.json")
    cli.ok("account", "invoicer", "BRANCH", "HQ")
    assert store.get_account("HQ").members == ["BRANCH"]

    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    head = store.queries.head()
    refused = cli("run", "execute", "jan")
    assert refused.returncode != 0
    assert "USD/EUR" in refused.stderr and "billrun rates set" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert store.queries.head() == head  # the run did not start

    bad = cli("rates", "set", "EUR", "USD", "0", "--date", "2026-01-01")
    assert bad.returncode != 0 and "positive" in bad.stderr
    assert cli.json("rates", "set", "EUR", "USD", "1.25", "--date", "2026-01-01", "--json")[
        "recorded"
    ]
    listed = cli.json("rates", "list", "--json")
    assert listed["rates"] == [{"pair": "EUR/USD", "effective_date": "2026-01-01", "rate": "1.25"}]

    cli.ok("run", "execute", "jan")
    [invoice] = cli.json("invoice", "list", "--run", "jan", "--json")
    assert invoice["account"] == "HQ"
    assert [(line["source"], line["amount"]) for line in invoice["lines"]] == [
        ("package:office", "100.00"),
        ("package:desk", "40.00"),
    ]
    assert str(store.get_run("jan").rates.rates["EUR/USD"]) == "1.25"  # recorded on the run


def test_a_member_cannot_be_selected_on_its_own(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, account("HQ", package()), account("SHOP", package()))
    cli.ok("import", "accounts.json")
    cli.ok("account", "invoicer", "SHOP", "HQ")
    refused = cli(
        "run", "schedule", "r", "--period-start", "2026-01-01", "--period-end", "2026-01-31",
        "--account", "SHOP",
    )  # fmt: skip
    assert refused.returncode != 0 and "select HQ" in refused.stderr
    assert "is now" in cli.ok("account", "invoicer", "SHOP", "--none").stdout


def test_a_converted_unit_price_prints_in_plain_notation_everywhere(
    cli: Cli, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        account("HQ", package("office", "100.00")),
        account("BRANCH", package("desk", "125.00"), currency="USD"),
    )
    cli.ok("import", "accounts.json")
    cli.ok("account", "invoicer", "BRANCH", "HQ")
    cli.ok("rates", "set", "EUR", "USD", "1.25", "--date", "2026-01-01")
    cli.ok("rates", "base", "EUR")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan")

    [invoice] = cli.json("invoice", "list", "--run", "jan", "--json")
    desk = next(line for line in invoice["lines"] if line["source"] == "package:desk")
    # 125.00 USD at 1 EUR = 1.25 USD is 100 EUR: once printed `1E+2`.
    assert (desk["unit_amount"], desk["amount"]) == ("100.00", "100.00")
    shown = cli.json("invoice", "show", str(invoice["number"]), "--json")
    assert "E+" not in json.dumps(shown)
    [shown_desk] = [line for line in shown["lines"] if line["source"] == "package:desk"]
    assert (shown_desk["unit_amount"], shown_desk["base_amount"]) == ("100.00", "100.00")
    table = cli.ok("invoice", "show", str(invoice["number"])).stdout
    assert "E+" not in table and "100.00" in table
    history = cli.ok("history", "--run", "jan", "--json").stdout
    assert "E+" not in history


def test_a_family_parked_for_a_missing_rate_is_billed_by_a_retry_once_the_rate_is_recorded(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(
        tmp_path,
        account("HQ", package("office", "100.00")),
        account("BRANCH", package("desk", "125.00"), currency="USD"),
    )
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")

    def branch_joins_hq_once_the_run_started(run: BillRun) -> None:
        # The run fixed its rates (none) when it started; the family is new.
        if run.batches == 0 and not store.get_account("HQ").members:
            assign_invoicer(store, "BRANCH", "HQ")

    executor = BillRunExecutor(store, 1, on_checkpoint=branch_joins_hq_once_the_run_started)
    executor.execute("jan")

    status = cli.json("run", "status", "jan", "--json")
    reason = status["parked"]["HQ"]
    figures = ("accounts_seen", "accounts_billed", "accounts_skipped", "accounts_parked")
    assert [status[f] for f in figures] == [2, 0, 0, 2]  # the family, parked
    assert "billrun rates set" in reason and "billrun run retry jan --account HQ" in reason
    head = store.queries.head()
    refused = cli("run", "retry", "jan", "--account", "HQ")
    assert refused.returncode != 0 and "USD/EUR" in refused.stderr
    assert store.queries.head() == head  # a failed retry writes nothing

    cli.ok("rates", "set", "EUR", "USD", "1.25", "--date", "2026-01-01")
    retried = cli.json("run", "retry", "jan", "--account", "HQ", "--json")
    assert retried["invoices"] == 1
    [invoice] = cli.json("invoice", "list", "--run", "jan", "--account", "HQ", "--json")
    assert [(line["source"], line["amount"]) for line in invoice["lines"]] == [
        ("package:office", "100.00"),
        ("package:desk", "100.00"),
    ]
    after = cli.json("run", "status", "jan", "--json")
    assert after["parked"] == {}
    assert [after[f] for f in figures] == [2, 2, 0, 0]  # seen = billed + skipped + parked
    assert store.get_run("jan").rates.rates == {"EUR/USD": Decimal("1.25")}  # recorded
    events = [e["event"] for e in cli.json("history", "--run", "jan", "--json")]
    assert "RunRatesAdded" in events
