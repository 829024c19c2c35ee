"""`billrun usage ...` and `billrun charge ...` as an operator runs them, through to
the bill runs that bill them: once, and never again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from application.shared.app import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli

ACCOUNTS = [
    account("ACME-001", package("office", "100.00")),
    account("GLOBEX-002", package("desk", "50.00", start_date="2026-01-10"), currency="GBP"),
]
HEADER = "account_id,usage_id,package_id,quantity,occurred_on,unit_price,description"


def setup(cli: Cli, tmp_path: Path) -> None:
    write_import_file(tmp_path, *ACCOUNTS)
    cli.ok("import", "accounts.json")


def write_csv(tmp_path: Path, name: str, *rows: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return path


def stderr_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def squeezed(text: str) -> str:
    """Text with runs of whitespace made one space, whatever the terminal width did."""
    return " ".join(text.split())


def invoice_of(cli: Cli, run_id: str, account_id: str) -> dict[str, Any]:
    listed = cli.json("invoice", "list", "--run", run_id, "--account", account_id, "--json")
    assert len(listed) == 1, listed
    shown: dict[str, Any] = cli.json("invoice", "show", listed[0]["id"], "--json")
    return shown


def by_source(invoice: dict[str, Any]) -> dict[str, dict[str, Any]]:
    lines = {line["source"]: line for line in invoice["lines"]}
    assert len(lines) == len(invoice["lines"]), "one line per source here"
    return lines


# Recording --------------------------------------------------------------------------------


def test_usage_recorded_twice_under_one_id_is_recorded_once(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    args = ("usage", "record", "ACME-001", "office", "120", "--id", "print-1",
            "--date", "2026-01-05", "--unit-price", "0.05",
            "--description", "Printing (pages)", "--json")  # fmt: skip

    first = cli.json(*args)
    head = store.queries.head()
    again = cli.json(*args)

    assert first == {
        "account": "ACME-001",
        "recorded": True,
        "usage": {
            "usage_id": "print-1",
            "package_id": "office",
            "description": "Printing (pages)",
            "quantity": "120",
            "unit_price": "0.05",
            "occurred_on": "2026-01-05",
            "currency": "EUR",
            "billed": False,
            "written_off": False,
            "written_off_by_run": None,
        },
    }
    assert again == {**first, "recorded": False}
    assert store.queries.head() == head, "a duplicate writes nothing"
    assert cli.json("usage", "list", "ACME-001", "--json") == [first["usage"]]
    text = squeezed(cli.ok(*args[:-1]).stdout)
    assert "print-1 was already recorded on ACME-001 with the same data; nothing written" in text


def test_usage_record_refusals_name_the_problem_and_write_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    cli.ok("usage", "record", "ACME-001", "office", "2", "--id", "u-1", "--date", "2026-01-05",
           "--unit-price", "1.00")  # fmt: skip
    head = store.queries.head()
    refusals = [
        (("ACME-001", "office", "3", "--id", "u-1", "--date", "2026-01-05", "--unit-price", "1"),
         "usage u-1 is already recorded on account ACME-001 with other data"),
        (("ACME-001", "office", "1,5", "--id", "u-2", "--date", "2026-01-05"),
         'QUANTITY: not a decimal: "1,5"'),
        (("ACME-001", "office", "1", "--id", "u-2", "--date", "2026-02-30"),
         '--date: "2026-02-30" is not a date: February 2026 has 28 days'),
        (("ACME-001", "office", "1", "--id", "u-2", "--date", "2026-01-05", "--unit-price", "x"),
         '--unit-price: not a decimal: "x"'),
        (("ACME-001", "office", "1", "--id", "u-2", "--date", "2026-01-05"),
         "usage u-2: no unit price given and package office has no usage rate"),
        (("ACME-001", "gym", "1", "--id", "u-2", "--date", "2026-01-05", "--unit-price", "1"),
         "account ACME-001 has no package 'gym'"),
        (("NOPE-404", "office", "1", "--id", "u-2", "--date", "2026-01-05", "--unit-price", "1"),
         "no account 'NOPE-404'"),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda r: cli("usage", "record", *r[0]), refusals))

    for (args, message), result in zip(refusals, results, strict=True):
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == "", args
        assert "Traceback" not in result.stderr
        assert message in squeezed(result.stderr), result.stderr
    assert store.queries.head() == head


# Importing --------------------------------------------------------------------------------


def test_a_refused_usage_file_prints_every_problem_and_writes_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    first = write_csv(tmp_path, "first.csv", "ACME-001,u-1,office,1,2026-01-05,1.00,")
    cli.ok("usage", "import", str(first))
    before = cli.json("usage", "list", "ACME-001", "--json")
    head = store.queries.head()
    # Problems of the file itself: found before any account is read.
    write_csv(
        tmp_path,
        "bad.csv",
        "ACME-001,u-2,office,2,2026-01-06,1.00,",
        'ACME-001,u-3,office,"1,5",2026-01-07,1.00,',
        "ACME-001,u-4,office,1,2026-02-30,1.00,",
        "ACME-001,,office,1,2026-01-08,0.1.0,",
    )
    # Problems only the accounts can tell: every row parses.
    write_csv(
        tmp_path,
        "refused.csv",
        "ACME-001,u-5,office,2,2026-01-06,1.00,",
        "NOPE-404,u-6,office,1,2026-01-07,1.00,",
        "ACME-001,u-7,gym,1,2026-01-07,1.00,",
        "GLOBEX-002,u-8,desk,1,2026-01-09,1.00,",
        "ACME-001,u-1,office,5,2026-01-05,1.00,",
    )

    bad = cli("usage", "import", "bad.csv")
    refused = cli("usage", "import", "refused.csv", "--json")

    assert bad.returncode == 2 and bad.stdout == ""
    assert "Traceback" not in bad.stderr
    assert "bad.csv: refused, 4 problems, nothing written" in bad.stderr
    lines = stderr_lines(bad.stderr)
    for problem in (
        'bad.csv: line 3, quantity: not a decimal: "1,5"',
        'bad.csv: line 4, occurred_on: "2026-02-30" is not a date: February 2026 has 28 days',
        "bad.csv: line 5, usage_id: required, but empty",
        'bad.csv: line 5, unit_price: not a decimal: "0.1.0"',
    ):
        assert problem in lines, bad.stderr

    assert refused.returncode == 2 and refused.stdout == ""
    assert "refused.csv: refused, 4 problems, nothing written" in refused.stderr
    lines = stderr_lines(refused.stderr)
    for problem in (
        "refused.csv: line 3: no account 'NOPE-404'",
        "refused.csv: line 4: account ACME-001 has no package 'gym'",
        "refused.csv: line 5: usage u-8: occurred on 2026-01-09, outside package desk (2026-01-10)",
        "refused.csv: line 6: usage u-1 is already recorded on account ACME-001 with other data",
    ):
        assert problem in lines, refused.stderr

    missing = cli("usage", "import", "missing.csv")
    assert missing.returncode == 2
    assert "missing.csv: cannot read: No such file or directory" in missing.stderr

    assert store.queries.head() == head
    assert cli.json("usage", "list", "ACME-001", "--json") == before
    assert cli.json("usage", "list", "GLOBEX-002", "--json") == []


def test_a_usage_file_imported_again_records_nothing_new(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    path = write_csv(
        tmp_path,
        "usage.csv",
        "ACME-001,u-1,office,1.5,2026-01-05,0.333,Calls",
        "",
        "GLOBEX-002,u-1,desk,2,2026-01-12,4,",
        "ACME-001,u-2,office,1,2026-01-06,0.333,Calls",
    )
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as spreadsheets save it

    first = cli.json("usage", "import", str(path), "--json")
    head = store.queries.head()
    again = cli.json("usage", "import", str(path), "--json")
    text = cli.ok("usage", "import", str(path)).stdout

    assert first == {"recorded": 3, "duplicates": 0, "accounts": 2, "events": 3}
    assert again == {"recorded": 0, "duplicates": 3, "accounts": 0, "events": 0}
    assert "0 usage records recorded, 3 already recorded" in squeezed(text)
    assert store.queries.head() == head
    globex = cli.json("usage", "list", "GLOBEX-002", "--json")
    assert [(u["usage_id"], u["quantity"], u["unit_price"], u["description"]) for u in globex] == [
        ("u-1", "2", "4", "Desk")  # the package's description when the file has none
    ]


# Charges ----------------------------------------------------------------------------------


def test_charges_and_credits_are_added_once_and_listed(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    setup_fee = ("charge", "add", "ACME-001", "--id", "setup", "--description", "Setup fee",
                 "--amount", "250.00", "--date", "2026-01-15",
                 "--tax-rate", "20", "--json")  # fmt: skip

    added = cli.json(*setup_fee)
    head = store.queries.head()
    again = cli.json(*setup_fee)
    credit = cli.ok("charge", "add", "ACME-001", "--id", "goodwill",
                    "--description", "Goodwill", "--amount", "-20.00",
                    "--date", "2026-01-10", "--category", "credits")  # fmt: skip
    refusals = {
        "more decimals": cli("charge", "add", "ACME-001", "--id", "x", "--description", "X",
                             "--amount", "1.005", "--date", "2026-01-10"),
        "other data": cli("charge", "add", "ACME-001", "--id", "setup", "--description",
                          "Setup fee", "--amount", "260.00", "--date", "2026-01-15"),
        "tax rate": cli("charge", "add", "ACME-001", "--id", "y", "--description", "Y",
                        "--amount", "1", "--date", "2026-01-10", "--tax-rate", "120"),
        "amount": cli("charge", "add", "ACME-001", "--id", "z", "--description", "Z",
                      "--amount", "12,50", "--date", "2026-01-10"),
    }  # fmt: skip
    listed = cli.json("charge", "list", "ACME-001", "--json")

    assert added == {
        "account": "ACME-001",
        "recorded": True,
        "charge": {
            "charge_id": "setup",
            "description": "Setup fee",
            "amount": "250.00",
            "charge_date": "2026-01-15",
            "category": "charges",
            "tax_rate": "20",
            "vat_category": None,
            "exemption_reason": None,
            "currency": "EUR",
            "billed": False,
            "written_off": False,
            "written_off_by_run": None,
        },
    }
    assert again == {**added, "recorded": False}
    assert "credit goodwill added to ACME-001: -20.00 EUR" in squeezed(credit.stdout)
    messages = {
        "more decimals": "charge x: amount 1.005 has more decimals than EUR allows",
        "other data": "charge setup is already on account ACME-001 with other data",
        "tax rate": "charge y: tax rate 120 must be a percentage from 0 to 100",
        "amount": '--amount: not a decimal: "12,50"',
    }
    for name, result in refusals.items():
        assert result.returncode == 2, (name, result.stderr)
        assert messages[name] in squeezed(result.stderr), result.stderr
    # By date: the credit (Jan 10) before the fee (Jan 15).
    assert [(c["charge_id"], c["amount"], c["category"], c["billed"]) for c in listed] == [
        ("goodwill", "-20.00", "credits", False),
        ("setup", "250.00", "charges", False),
    ]
    assert store.queries.head() == head + 1, "only the credit was written after the fee"


# Billing ----------------------------------------------------------------------------------


def test_bill_runs_bill_usage_and_charges_once(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    cli.ok("usage", "record", "ACME-001", "office", "120", "--id", "print-1", "--date",
           "2026-01-05", "--unit-price", "0.05", "--description", "Printing")  # fmt: skip
    cli.ok("usage", "import", str(write_csv(
        tmp_path, "usage.csv",
        "ACME-001,print-2,office,10,2026-01-20,0.05,Printing",
        "ACME-001,print-3,office,7,2026-02-03,0.05,Printing",
    )))  # fmt: skip
    cli.ok("charge", "add", "ACME-001", "--id", "setup", "--description", "Setup fee",
           "--amount", "250.00", "--date", "2026-01-15", "--tax-rate", "20")  # fmt: skip
    cli.ok("charge", "add", "ACME-001", "--id", "goodwill", "--description", "Goodwill",
           "--amount", "-20.00", "--date", "2026-02-10")  # fmt: skip

    cli.ok("run", "schedule", "2026-01", "--period-start", "2026-01-01",
           "--period-end", "2026-01-31")  # fmt: skip
    cli.ok("run", "execute", "2026-01", "--json")
    january = invoice_of(cli, "2026-01", "ACME-001")
    unbilled_usage = cli.json("usage", "list", "ACME-001", "--unbilled", "--json")
    unbilled_charges = cli.json("charge", "list", "ACME-001", "--unbilled", "--json")

    lines = by_source(january)
    assert set(lines) == {"package:office", "usage:office", "charge:setup"}
    usage = lines["usage:office"]
    # Both January records on one line (same description and price); February's waits.
    assert (usage["quantity"], usage["unit_amount"], usage["amount"]) == ("130", "0.05", "6.50")
    assert (usage["service_period_start"], usage["service_period_end"]) == (
        "2026-01-05",
        "2026-01-20",
    )
    assert usage["kind"] == "usage"
    charge = lines["charge:setup"]
    assert (charge["amount"], charge["tax_rate"], charge["tax"], charge["kind"]) == (
        "250.00",
        "20",
        "50.00",
        "charge",
    )
    assert (january["subtotal"], january["tax"], january["total"]) == ("356.50", "50.00", "406.50")
    assert [u["usage_id"] for u in unbilled_usage] == ["print-3"]
    assert [c["charge_id"] for c in unbilled_charges] == ["goodwill"]

    # The same period again under another run id: nothing is left to bill.
    cli.ok("run", "schedule", "2026-01-again", "--period-start", "2026-01-01",
           "--period-end", "2026-01-31")  # fmt: skip
    again = cli.json("run", "execute", "2026-01-again", "--json")
    assert (again["statistics"]["accounts_billed"], again["statistics"]["invoices"]) == (0, 0)
    assert cli.json("invoice", "list", "--run", "2026-01-again", "--json") == []

    # February bills the usage and the credit left over, and January's not again.
    cli.ok("run", "schedule", "2026-02", "--period-start", "2026-02-01",
           "--period-end", "2026-02-28")  # fmt: skip
    cli.ok("run", "execute", "2026-02", "--json")
    february = invoice_of(cli, "2026-02", "ACME-001")
    usage_after = cli.json("usage", "list", "ACME-001", "--json")
    charges_after = cli.json("charge", "list", "ACME-001", "--json")

    lines = by_source(february)
    assert set(lines) == {"package:office", "usage:office", "charge:goodwill"}
    assert (lines["usage:office"]["quantity"], lines["usage:office"]["amount"]) == ("7", "0.35")
    assert lines["charge:goodwill"]["amount"] == "-20.00"
    assert february["subtotal"] == str(Decimal("100.00") + Decimal("0.35") - Decimal("20.00"))
    assert all(u["billed"] for u in usage_after)
    assert all(c["billed"] for c in charges_after)
    assert cli.json("usage", "list", "ACME-001", "--unbilled", "--json") == []
    assert "no" not in cli.ok("charge", "list", "ACME-001").stdout.split()


def test_help_explains_the_usage_and_charge_commands(cli: Cli) -> None:
    groups = [("usage",), ("usage", "import"), ("charge",), ("charge", "add")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda group: cli(*group, "--help"), groups))

    for group, result in zip(groups, results, strict=True):
        assert result.returncode == 0, (group, result.stderr)
        assert "Usage: billrun" in result.stdout, group
    usage, usage_import, charge, charge_add = (squeezed(r.stdout) for r in results)
    for command in ("record", "import", "list"):
        assert command in usage
    assert "account_id, usage_id, package_id, quantity, occurred_on" in usage_import
    assert "add" in charge and "list" in charge
    assert "billrun charge add ACME-001" in charge_add and "--amount -20.00" in charge_add
