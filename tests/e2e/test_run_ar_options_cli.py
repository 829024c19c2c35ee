"""The AR run settings as an operator gives them: `--dunning`, `--collect-payments`
and `--collection-type` on `billrun run schedule` and `billrun schedule add`, shown
by `billrun run status`, and a run that only duns."""

from __future__ import annotations

from pathlib import Path

from application.shared.app import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli

JANUARY = ("--period-start", "2026-01-01", "--period-end", "2026-01-31")
BILLS_NOTHING = ("--no-packages", "--no-usage", "--no-charges", "--no-contracts", "--no-invoices")


def table_text(text: str) -> str:
    """A rich table's rows as words separated by single spaces."""
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def test_a_run_scheduled_to_dun_and_collect_shows_those_settings_in_its_status(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A", package()))
    cli.ok("import", "accounts.json")

    scheduled = cli.json(
        "run", "schedule", "R", *JANUARY, "--dunning", "--collect-payments",
        "--collection-type", "invoice_due_date", "--json",
    )  # fmt: skip
    assert scheduled["created"]

    status = cli.json("run", "status", "R", "--json")
    settings = status["settings"]
    assert (settings["run_dunning"], settings["collect_payments"]) == (True, True)
    assert settings["collection_type"] == "invoice_due_date"
    assert settings["bill_packages"] and settings["run_invoices"]  # the defaults stay on
    shown = table_text(cli.ok("run", "status", "R").stdout)
    assert (
        "steps run_dunning, bill_packages, bill_usage, run_contracts, bill_charges, "
        "run_invoices, collect_payments" in shown
    ), shown
    assert "collection type invoice_due_date" in shown

    # The same again is the same run; other AR settings under its id are refused.
    again = cli.json(
        "run", "schedule", "R", *JANUARY, "--dunning", "--collect-payments",
        "--collection-type", "invoice_due_date", "--json",
    )  # fmt: skip
    assert not again["created"]
    other = cli("run", "schedule", "R", *JANUARY, "--dunning", "--collect-payments")
    assert other.returncode == 2 and "already scheduled" in other.stderr


def test_a_run_that_only_duns_can_be_scheduled_and_the_defaults_neither_dun_nor_collect(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A", package()))
    cli.ok("import", "accounts.json")

    cli.ok("run", "schedule", "DUN", *JANUARY, "--dunning", *BILLS_NOTHING)
    dunning_only = cli.json("run", "status", "DUN", "--json")["settings"]
    assert dunning_only["run_dunning"] is True
    assert not any(
        dunning_only[step]
        for step in ("bill_packages", "bill_usage", "bill_charges", "run_contracts", "run_invoices")
    )
    assert dunning_only["collect_payments"] is False
    assert "steps run_dunning" in table_text(cli.ok("run", "status", "DUN").stdout)

    cli.ok("run", "schedule", "PLAIN", *JANUARY)
    plain = cli.json("run", "status", "PLAIN", "--json")["settings"]
    assert (plain["run_dunning"], plain["collect_payments"]) == (False, False)
    assert plain["collection_type"] == "account_balance"
    assert "collection type" not in table_text(cli.ok("run", "status", "PLAIN").stdout)


def test_ar_options_that_make_no_sense_are_refused_and_write_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A", package()))
    cli.ok("import", "accounts.json")
    head = store.queries.head()

    nothing = cli("run", "schedule", "R", *JANUARY, *BILLS_NOTHING)
    assert nothing.returncode == 2 and "leave nothing to bill" in nothing.stderr
    assert "--dunning" in nothing.stderr
    stray = cli("run", "schedule", "R", *JANUARY, "--collection-type", "invoice_due_date")
    assert stray.returncode == 2 and "--collect-payments" in stray.stderr
    unknown = cli("run", "schedule", "R", *JANUARY, "--collect-payments", "--collection-type", "x")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert store.queries.head() == head


def test_a_schedule_takes_the_ar_options_for_its_runs(cli: Cli, store: Billing) -> None:
    added = cli.json(
        "schedule", "add", "dunning", "--every", "daily", "--at", "2026-05-01T06:00Z",
        "--dunning", *BILLS_NOTHING, "--collect-payments", "--collection-type",
        "invoice_due_date", "--json",
    )  # fmt: skip
    settings = added["settings"]
    assert (settings["run_dunning"], settings["collect_payments"]) == (True, True)
    assert settings["collection_type"] == "invoice_due_date"
    assert not settings["bill_packages"]
    [listed] = cli.json("schedule", "list", "--json")
    assert listed["settings"] == settings


def test_the_report_of_a_collecting_run_shows_what_it_collected_and_its_true_status(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, {**account("A", package()), "autopay_token": "tok_approved_a"})
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "R", *JANUARY, "--collect-payments")
    cli.ok("run", "execute", "R", "--json")

    report = cli.json("run", "report", "R", "--json")
    assert report["status"] == "completed"
    assert report["receivables"]["collection_approved"] == 1
    assert report["receivables"]["collected"] == {"EUR": "100.00"}
    shown = table_text(cli.ok("run", "report", "R").stdout)
    assert "AR steps of run R" in shown and "collected EUR: 100.00" in shown
