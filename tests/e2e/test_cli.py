"""`billrun` as a user runs it: a real process, its exit code, stdout and stderr.

The JSON printed by read commands is a contract other programs rely on: the
fields checked here are the ones documented, money is a decimal string and
dates are ISO 8601.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.terms import ChargeTerms
from domain.runs.settings import Selection
from domain.shared.periods import Period
from tests.conftest import account, import_accounts, package, write_import_file
from tests.e2e.conftest import BILLRUN, Cli, user_environment

ACCOUNTS = [
    account("ACME-001", package("office", "1200.00"), package("mail", "45.00", "quarterly")),
    account("GLOBEX-002", package("desk", "320.00", timing="arrears"), currency="GBP"),
    account("INITECH-003", package("locker", "9000"), currency="JPY", bill_group="key"),
]

MONEY = re.compile(r"^-?\d+(\.\d+)?$")
INVOICE_FIELDS = {
    "id", "number", "account", "currency", "status", "run_id", "subtotal", "tax", "total",
}  # fmt: skip
LINE_FIELDS = {
    "source", "description", "service_period_start", "service_period_end",
    "quantity", "unit_amount", "amount", "posting_date", "kind", "category", "tax_rate", "tax",
}  # fmt: skip


def assert_money(value: Any) -> Decimal:
    assert isinstance(value, str) and MONEY.match(value), f"money must be a string: {value!r}"
    return Decimal(value)


def assert_date(value: Any) -> date:
    assert isinstance(value, str), f"a date must be an ISO 8601 string: {value!r}"
    return date.fromisoformat(value)


def assert_invoice_contract(invoice: dict[str, Any]) -> None:
    assert invoice.keys() >= INVOICE_FIELDS
    assert isinstance(invoice["number"], int)
    for key in ("subtotal", "tax", "total"):
        assert_money(invoice[key])
    assert invoice["lines"], "a closed invoice has lines"
    for line in invoice["lines"]:
        assert line.keys() >= LINE_FIELDS
        assert line["kind"] in ("recurring", "usage", "charge")
        for key in ("quantity", "unit_amount", "amount", "tax_rate", "tax"):
            assert_money(line[key])
        for key in ("service_period_start", "service_period_end", "posting_date"):
            assert_date(line[key])
    assert sum(Decimal(line["amount"]) for line in invoice["lines"]) == Decimal(invoice["subtotal"])
    assert sum(Decimal(line["tax"]) for line in invoice["lines"]) == Decimal(invoice["tax"])
    assert Decimal(invoice["subtotal"]) + Decimal(invoice["tax"]) == Decimal(invoice["total"])


def stderr_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def squeezed(text: str) -> str:
    """Text with runs of whitespace made one space, whatever the terminal width did."""
    return " ".join(text.split())


def table_text(text: str) -> str:
    """A printed table's cells in reading order, without its box-drawing lines."""
    return squeezed(re.sub("[\u2500-\u257f]", " ", text))


# Import ---------------------------------------------------------------------


def test_import_of_a_bad_file_prints_every_problem_with_its_path_and_writes_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    head = store.queries.head()
    bad = {
        "accounts": [
            account("NEW-004", package("office", "12,00")),
            {**ACCOUNTS[1], "currency": "XXX"},
            account("NEW-005", package("office", "10.00", start_date="2026-02-30")),
        ]
    }
    (tmp_path / "bad.json").write_text(json.dumps(bad))

    result = cli("import", "bad.json")

    assert result.returncode != 0
    assert result.stdout == ""
    lines = stderr_lines(result.stderr)
    for problem in (
        'bad.json: accounts[0].packages[0].amount: not a decimal: "12,00"',
        'bad.json: accounts[1].currency: not an ISO 4217 currency code: "XXX"',
        'bad.json: accounts[2].packages[0].start_date: "2026-02-30" is not a date: '
        "February 2026 has 28 days",
    ):
        assert problem in lines, result.stderr
    assert "3 problems, nothing written" in result.stderr
    assert "Traceback" not in result.stderr
    assert store.queries.head() == head


def test_import_refuses_a_change_the_history_forbids_and_writes_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, *ACCOUNTS)
    cli.ok("import", "accounts.json")
    head = store.queries.head()
    write_import_file(tmp_path, {**ACCOUNTS[0], "name": "renamed", "currency": "USD"})

    result = cli("import", "accounts.json")

    assert result.returncode != 0
    assert result.stdout == ""
    assert (
        "accounts.json: accounts[0].currency: account ACME-001 bills in EUR; "
        "its currency cannot change to USD"
    ) in stderr_lines(result.stderr)
    assert store.queries.head() == head


def test_import_problems_are_printed_verbatim_one_line_each(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    """Whatever the file says is echoed as it is (never read as console markup) and
    each problem stays on one line, however long, for whoever reads the pipe."""
    folder = tmp_path / "a rather long folder name for the operator's import files"
    folder.mkdir()
    path = folder / "bad.json"
    path.write_text(
        json.dumps(
            {
                "accounts": [
                    account("A-1", package("office", "[red]12")),
                    account("A-2", package("office", "1[/x]")),
                ]
            }
        )
    )

    result = cli("import", str(path))

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result.stderr)
    assert f'{path}: accounts[0].packages[0].amount: not a decimal: "[red]12"' in lines
    assert f'{path}: accounts[1].packages[0].amount: not a decimal: "1[/x]"' in lines
    assert store.queries.head() == 0


def test_import_of_a_missing_file_fails_clearly(cli: Cli, store: Billing) -> None:
    result = cli("import", "missing.json")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "missing.json: cannot read: No such file or directory" in squeezed(result.stderr)
    assert store.queries.head() == 0


# Runs and invoices --------------------------------------------------------------


def test_a_bill_run_through_the_cli_prints_the_json_contract(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, *ACCOUNTS)
    imported = cli.json("import", "accounts.json", "--json")

    scheduled = cli.json(
        "run", "schedule", "2026-q1", "--period-start", "2026-01-01",
        "--period-end", "2026-03-31", "--json",
    )  # fmt: skip
    executed = cli.json("run", "execute", "2026-q1", "--json")
    # Independent commands, run at once as operators (or scripts) might.
    commands = {
        "status": ("run", "status", "2026-q1", "--json"),
        "runs": ("run", "list", "--json"),
        "invoices": ("invoice", "list", "--json"),
        "acme": ("account", "show", "ACME-001", "--json"),
        "acme_invoices": ("invoice", "list", "--account", "ACME-001", "--json"),
        "first": ("invoice", "show", "1", "--json"),
        "again": ("run", "execute", "2026-q1", "--json"),
    }
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {name: pool.submit(cli.json, *args) for name, args in commands.items()}
        out = {name: future.result() for name, future in futures.items()}

    assert imported == {
        "accounts_opened": 3,
        "accounts_changed": 0,
        "accounts_unchanged": 0,
        "packages_added": 4,
        "charges_added": 0,
        "usage_recorded": 0,
        "contracts_agreed": 0,
        "events": 7,
        "bill_groups_added": 0,
        "bill_groups_changed": 0,
        "entities_added": 0,
        "entities_changed": 0,
    }
    assert scheduled["created"] is True
    assert (scheduled["run_id"], scheduled["status"]) == ("2026-q1", "scheduled")
    assert (assert_date(scheduled["period_start"]), assert_date(scheduled["period_end"])) == (
        date(2026, 1, 1),
        date(2026, 3, 31),
    )
    assert assert_date(scheduled["posting_date"]) == date(2026, 3, 31)

    assert (executed["status"], executed["already_completed"]) == ("completed", False)
    statistics = executed["statistics"]
    assert (statistics["accounts_billed"], statistics["invoices"]) == (3, 3)
    totals = {currency: assert_money(v) for currency, v in statistics["totals"].items()}
    # Office 3 x 1200.00 + mail 45.00; desk in arrears billed for Jan and Feb; 3 x 9000 yen.
    assert statistics["totals"] == {"EUR": "3645.00", "GBP": "640.00", "JPY": "27000"}

    status = out["status"]
    assert (status["run_id"], status["status"], status["invoices"]) == ("2026-q1", "completed", 3)
    # Labelled: net (the invoices' subtotals), tax and gross (their totals).
    assert {c: assert_money(v["net"]) for c, v in status["totals"].items()} == totals
    assert {c: assert_money(v["gross"]) for c, v in status["totals"].items()} == totals
    assert status["lines"] == statistics["lines"]
    for key in ("scheduled_at", "started_at", "completed_at"):
        datetime.fromisoformat(status[key])
    assert [run["run_id"] for run in out["runs"]] == ["2026-q1"]
    # `run status` adds what only the run itself knows (its workflow state, description,
    # preview comparison, parked accounts and stranded bill dates it left owed) to the
    # row `run list` shows.
    extra = {
        "workflow_state", "description", "preview", "parked", "step_log", "stranded_bill_dates"
    }  # fmt: skip
    assert out["runs"][0] == {k: v for k, v in status.items() if k not in extra}
    assert (status["workflow_state"], status["parked"]) == ("drafts_ready", {})

    invoices = out["invoices"]
    assert len(invoices) == 3
    assert [invoice["number"] for invoice in invoices] == [1, 2, 3]
    for invoice in invoices:
        assert_invoice_contract(invoice)
        assert (invoice["run_id"], invoice["status"]) == ("2026-q1", "closed")
    by_currency: dict[str, Decimal] = {}
    for invoice in invoices:
        by_currency[invoice["currency"]] = by_currency.get(invoice["currency"], Decimal(0)) + (
            Decimal(invoice["total"])
        )
    assert by_currency == totals
    assert [i["account"] for i in out["acme_invoices"]] == ["ACME-001"]

    shown, listed = out["first"], invoices[0]
    assert_invoice_contract(shown)
    for key in INVOICE_FIELDS:
        assert shown[key] == listed[key], key
    assert [{k: line[k] for k in LINE_FIELDS} for line in shown["lines"]] == listed["lines"]

    acme = out["acme"]
    assert (acme["id"], acme["currency"], acme["bill_group"]) == ("ACME-001", "EUR", "monthly")
    packages = {p["package_id"]: p for p in acme["packages"]}
    assert set(packages) == {"office", "mail"}
    assert assert_money(packages["office"]["amount"]) == Decimal("1200.00")
    # Q1 billed: the monthly office next bills in April, the quarterly mail too.
    assert assert_date(packages["office"]["next_bill_date"]) == date(2026, 4, 1)
    assert assert_date(packages["mail"]["next_bill_date"]) == date(2026, 4, 1)
    assert assert_date(packages["office"]["start_date"]) == date(2026, 1, 1)

    again = out["again"]
    assert again["already_completed"] is True
    assert again["statistics"] == statistics


TAXED_ACCOUNTS = [
    account("ACME-001", package("office", "1200.00"), package("phone", "30.00")),
    account("GLOBEX-002", package("desk", "320.00"), currency="GBP"),
]


def taxed_run_with_usage_and_charges(store: Billing) -> None:
    """Run `jan` bills ACME-001 (20 %; its phone at 6 % in `telecom`, with usage,
    and a credit) and GLOBEX-002 (20 %; a one-off charge at 6 %)."""
    import_accounts(store, *TAXED_ACCOUNTS)
    acme, globex = store.get_account("ACME-001"), store.get_account("GLOBEX-002")
    for found in (acme, globex):
        found.change_details(
            found.name, found.invoice_email, found.bill_group, store.clock(), Decimal(20)
        )
    phone = acme.packages["phone"].terms
    changes = {"category": "telecom", "tax_rate": Decimal(6), "usage_rate": Decimal("0.05")}
    acme.revise_package(phone.model_copy(update=changes), store.clock())
    acme.record_usage("call-1", "phone", Decimal("321"), date(2026, 1, 14), store.clock())
    acme.add_charge(
        ChargeTerms(
            charge_id="sorry", description="Outage credit", amount=Decimal("-100.00"),
            charge_date=date(2026, 1, 20), category="credits",
        ),
        store.clock(),
    )  # fmt: skip
    globex.add_charge(
        ChargeTerms(
            charge_id="setup", description="Set-up", amount=Decimal("50.00"),
            charge_date=date(2026, 1, 2), tax_rate=Decimal(6),
        ),
        store.clock(),
    )  # fmt: skip
    store.save(acme, globex)
    schedule_run(store, "jan", Period(date(2026, 1, 1), date(2026, 1, 31)), None, Selection())
    assert BillRunExecutor(store, 1).execute("jan").run.is_completed


def test_invoice_show_and_the_run_report_show_kinds_categories_and_taxes(
    cli: Cli, store: Billing
) -> None:
    taxed_run_with_usage_and_charges(store)
    wide = Cli(cwd=cli.cwd, env={**cli.env, "COLUMNS": "200"})
    commands: dict[str, tuple[Cli, tuple[str, ...]]] = {
        "show": (cli, ("invoice", "show", "1", "--json")),
        "show_text": (wide, ("invoice", "show", "INV-00000001")),
        "list": (cli, ("invoice", "list", "--run", "jan", "--json")),
        "report": (cli, ("run", "report", "jan", "--json")),
        "report_text": (wide, ("run", "report", "jan")),
        "status": (cli, ("run", "status", "jan", "--json")),
        "status_text": (wide, ("run", "status", "jan")),
    }
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        futures = {name: pool.submit(c.ok, *args) for name, (c, args) in commands.items()}
        out = {name: future.result().stdout for name, future in futures.items()}

    shown, listed = json.loads(out["show"]), json.loads(out["list"])
    assert_invoice_contract(shown)
    assert shown["account"] == "ACME-001"
    lines = {line["source"]: line for line in shown["lines"]}
    assert {k: lines["usage:phone"][k] for k in ("kind", "category", "tax_rate", "tax")} == {
        # 321 minutes at 0.05 = 16.05, tax 6 % = 0.963
        "kind": "usage", "category": "telecom", "tax_rate": "6", "tax": "0.96",
    }  # fmt: skip
    assert (lines["charge:sorry"]["amount"], lines["charge:sorry"]["tax"]) == ("-100.00", "-20.00")
    # 1200.00 + 30.00 + 16.05 - 100.00; 240.00 + 1.80 + 0.96 - 20.00
    assert (shown["subtotal"], shown["tax"], shown["total"]) == ("1146.05", "222.76", "1368.81")
    assert [{k: line[k] for k in LINE_FIELDS} for line in shown["lines"]] == listed[0]["lines"]
    for invoice in listed:
        assert_invoice_contract(invoice)

    text = table_text(out["show_text"])
    for expected in (
        "service kind period description category qty unit amount tax % tax",  # two-line headers
        # Each line: description, kind, numbers; under them its source and category.
        "2026-01-14 Phone usage 321 0.05 16.05 6 0.96 usage:phone telecom",
        "Outage credit charge 1 -100.00 -100.00 20 -20.00 charge:sorry credits",
        "subtotal 1146.05", "tax 222.76", "total EUR 1368.81",
    ):  # fmt: skip
        assert expected in text, (expected, out["show_text"])

    report = json.loads(out["report"])
    assert list(report["per_step"]) == ["bill_packages", "bill_usage", "bill_charges"]
    assert list(report["per_category"]) == ["charges", "credits", "services", "telecom"]
    for currency in ("EUR", "GBP"):
        mine = [invoice for invoice in listed if invoice["currency"] == currency]
        sums = {key: sum(Decimal(i[key]) for i in mine) for key in ("subtotal", "tax", "total")}
        totals = report["per_currency"][currency]
        assert (totals["amount"], totals["tax"], totals["total"]) == (
            str(sums["subtotal"]), str(sums["tax"]), str(sums["total"]),
        )  # fmt: skip
        assert totals["invoiced"] == {key: str(value) for key, value in sums.items()}
        assert totals["invoices"] == len(mine)
    assert report["per_step"]["bill_charges"] == {
        "EUR": {"lines": 1, "amount": "-100.00", "tax": "-20.00", "total": "-120.00"},
        "GBP": {"lines": 1, "amount": "50.00", "tax": "3.00", "total": "53.00"},
    }
    assert report["settings"]["categories"] == []

    report_text = table_text(out["report_text"])
    for expected in (
        "bill_usage EUR 1 16.05 0.96 17.01",
        "category telecom EUR 2 46.05 2.76 48.81",
        "total GBP 2 370.00 67.00 437.00",
        "invoiced: 1 invoice EUR 1146.05 222.76 1368.81",
        "settings steps bill_packages, bill_usage, run_contracts, bill_charges, run_invoices",
        "settings categories all",
    ):
        assert expected in report_text, (expected, out["report_text"])

    status = json.loads(out["status"])
    assert status["settings"] == report["settings"]
    status_text = table_text(out["status_text"])
    assert (
        "steps bill_packages, bill_usage, run_contracts, bill_charges, run_invoices" in status_text
    )
    assert "categories all" in status_text


def test_unknown_runs_and_invoices_are_refused_clearly(cli: Cli, store: Billing) -> None:
    commands = [
        (("run", "execute", "nope"), "no bill run 'nope'; schedule it first"),
        (("run", "status", "nope", "--json"), "no bill run 'nope'"),
        (("invoice", "show", "42", "--json"), "no invoice '42'"),
    ]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(lambda command: cli(*command[0]), commands))

    for (args, message), result in zip(commands, results, strict=True):
        assert result.returncode != 0, args
        assert result.stdout == "", args
        assert "Traceback" not in result.stderr
        assert message in squeezed(result.stderr), result.stderr
    assert store.queries.head() == 0


def test_help_works_for_every_command_group(cli: Cli) -> None:
    groups = [
        (), ("run",), ("invoice",), ("account",), ("schema",), ("usage",), ("charge",),
        ("contract",), ("rates",),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        results = list(pool.map(lambda group: cli(*group, "--help"), groups))

    for group, result in zip(groups, results, strict=True):
        assert result.returncode == 0, (group, result.stderr)
        assert "Usage: billrun" in result.stdout, group
        assert "Traceback" not in result.stderr
    run_help = squeezed(results[1].stdout)
    for command in ("schedule", "execute", "status", "list"):
        assert command in run_help


def test_schema_import_prints_a_json_schema(cli: Cli) -> None:
    schema = cli.json("schema", "import")

    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert "accounts" in schema["properties"]
    package_schema = schema["$defs"]["PackageRecord"]
    assert package_schema["properties"]["amount"]["type"] == "string"
    assert {"id", "description", "amount", "frequency", "start_date"} <= set(
        package_schema["required"]
    )


# Demo -----------------------------------------------------------------------


def billed_count(stdout: str) -> int:
    found = re.search(r"accounts billed\W+(\d+)", stdout)
    assert found, stdout
    return int(found.group(1))


def test_demo_bills_invoices_and_a_second_demo_bills_nothing(cli: Cli) -> None:
    first = cli.ok("demo", "--accounts", "6")
    second = cli.ok("demo", "--accounts", "6")

    assert billed_count(first.stdout) == 6
    assert billed_count(second.stdout) == 0
    assert "Nothing new to bill" in squeezed(second.stdout)
    invoices = cli.json("invoice", "list", "--json")
    assert len(invoices) == 6
    assert {invoice["run_id"] for invoice in invoices} == {"demo-001"}


@pytest.fixture
def zero_configuration(tmp_path: Path) -> Iterator[Cli]:
    """`billrun` with no settings at all, in a fresh folder, as a new user runs it."""
    home = tmp_path / "home"
    yield Cli(cwd=tmp_path, env=user_environment(home))
    # The CLI stops the embedded server it starts; if a failure left it running,
    # stop that one process (by its pid) so it does not outlive the test.
    pid_file = home / "postgres" / "data" / "postmaster.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)


def test_demo_works_with_zero_configuration(zero_configuration: Cli, tmp_path: Path) -> None:
    cli = zero_configuration
    assert BILLRUN.exists()

    demo = cli.ok("demo", "--accounts", "5")
    invoices = cli.json("invoice", "list", "--json")

    billed = billed_count(demo.stdout)
    assert billed > 0
    assert len(invoices) == billed
    for invoice in invoices:
        assert_invoice_contract(invoice)
    home = tmp_path / "home"
    assert (home / "postgres" / "data").is_dir(), "the embedded cluster lives in BILLRUN_HOME"
    assert not (home / "postgres" / "data" / "postmaster.pid").exists(), (
        "each command stops the embedded server it started"
    )
