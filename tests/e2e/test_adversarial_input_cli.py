"""What a hostile user or a careless operator feeds billrun (issue 19): each is
refused whole, with one clear line naming what and where, exit code 2, and
nothing written; what is accepted can never block a later run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from application.shared.app import Billing
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli


def refused_whole(cli: Cli, store: Billing, *args: str) -> str:
    """Run billrun, check it refused with exit 2, no traceback and nothing written;
    the error output, squeezed onto one line (out of the frame typer draws around
    an option's error)."""
    head = store.queries.head()
    result = cli(*args)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert store.queries.head() == head
    return " ".join(result.stderr.replace("│", " ").split())


def write_json(directory: Path, name: str, document: Any) -> str:
    (directory / name).write_text(json.dumps(document))
    return name


def test_a_nul_character_in_a_name_is_refused_and_billing_goes_on(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    poisoned = account("NUL-1")
    poisoned["name"] = "Bad\u0000Name"
    write_import_file(tmp_path, poisoned)

    error = refused_whole(cli, store, "import", "accounts.json")

    assert (
        'accounts.json: accounts[0].name: "Bad\\u0000Name" holds a control character '
        "(U+0000) at position 4"
    ) in error
    write_import_file(tmp_path, account("OK-1", package()))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "check", "jan")
    executed = cli.json("run", "execute", "jan", "--json")
    assert (executed["status"], executed["statistics"]["invoices"]) == ("completed", 1)


def test_text_an_invoice_or_an_email_cannot_hold_is_refused_at_import(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    def with_field(**fields: Any) -> dict[str, Any]:
        return {"accounts": [{**account("A-1", package()), **fields}]}

    description = {"accounts": [account("A-1", package(description="Office\u0000"))]}
    cases = {
        "surrogate": (with_field(name="Customer \ud800 Ltd"), "lone surrogate (U+D800)"),
        "newline": (with_field(name="Evil\r\nBcc: x@y.test"), "control character (U+000D)"),
        "zero width": (with_field(id="A\u200b1"), "invisible format character (U+200B)"),
        "rtl override": (with_field(id="A\u202e1"), "bidirectional control character (U+202E)"),
        "newline in id": (with_field(id="A\n1"), "control character (U+000A)"),
        "huge name": (with_field(name="x" * 1_000_000), "is longer than 500 characters"),
        "nul description": (description, "accounts[0].packages[0].description"),
        "two recipients": (
            with_field(invoice_email="e20@example.test,attacker"),
            'invoice_email: not an email address: "e20@example.test,attacker"',
        ),
        "display name": (
            with_field(invoice_email='"x"<a@b.cc>'),
            "invoice_email: not an email address:",
        ),
        "header in email": (
            with_field(invoice_email="a@b.cc\nBcc: c@d.test"),
            "invoice_email: not an email address:",
        ),
    }
    for name, (document, expected) in cases.items():
        file = write_json(tmp_path, f"{name.replace(' ', '-')}.json", document)
        error = refused_whole(cli, store, "import", file)
        assert expected in error, (name, error)
        assert "nothing written" in error, (name, error)


def test_the_import_file_is_as_strict_as_the_csv_and_the_command_line(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    def with_package(**fields: Any) -> dict[str, Any]:
        return {"accounts": [account("A-1", package(**fields))]}

    cases = {
        "exponent": (with_package(amount="1e2"), 'amount: not a decimal: "1e2"'),
        "signed exponent": (with_package(amount="1E+3"), 'amount: not a decimal: "1E+3"'),
        "underscores": (with_package(amount="10_000.00"), 'not a decimal: "10_000.00"'),
        "arabic-indic": (with_package(amount="\u0661\u0662"), "amount: not a decimal:"),
        "huge": (with_package(amount="1e400"), 'not a decimal: "1e400"'),
        "32 digits": (
            with_package(amount="99999999999999999999999999999999"),
            "is too large: billrun bills amounts, quantities and rates below 1000000000000",
        ),
        "datetime": (
            with_package(start_date="2026-01-01T00:00:00"),
            'start_date: not a date (YYYY-MM-DD): "2026-01-01T00:00:00"',
        ),
        "year one": (
            with_package(start_date="0001-01-01"),
            "0001-01-01 is outside the dates billrun bills, 1900-01-01 to 2199-12-31",
        ),
        "boolean bill day": (
            {"accounts": [{**account("A-1"), "bill_day": True}]},
            "accounts[0].bill_day: must be a whole number, not true",
        ),
        "duplicate key": (None, "accounts[0].name: named twice in the same object"),
        "nested": (None, "nested too deeply (at most 16 levels)"),
        "5000 digits": (None, "a number of more than 4300 digits"),
        "days overdue": (
            {
                "bill_groups": [
                    {"id": "g", "dunning": {"stages": [{"days_overdue": 10**30, "notify": True}]}}
                ]
            },
            "stages[0].days_overdue: a stage is reached at most 3650 days overdue",
        ),
        "minimum spend": (
            {
                "accounts": [
                    {
                        **account("A-1"),
                        "contracts": [
                            {
                                "id": "c",
                                "description": "d",
                                "start_date": "2026-01-01",
                                "term_months": 12,
                                "minimum_spend": "1e400",
                            }
                        ],
                    }
                ]
            },
            'minimum_spend: not a decimal: "1e400"',
        ),
        "tiny rate": (
            {
                "exchange_rates": [
                    {"base": "EUR", "quote": "USD", "rate": "1e-400", "date": "2026-01-01"}
                ]
            },
            'exchange_rates[0].rate: not a decimal: "1e-400"',
        ),
    }
    raw = {
        "duplicate key": b'{"accounts":[{"id":"A","name":"N","name":"M","currency":"EUR"}]}',
        "nested": b'{"accounts":' + b"[" * 2000 + b"]" * 2000 + b"}",
        "5000 digits": b'{"accounts":[{"id":"A","name":"N","currency":"EUR",'
        b'"payment_terms_days":' + b"9" * 5000 + b"}]}",
    }
    for name, (document, expected) in cases.items():
        file = f"{name.replace(' ', '-')}.json"
        if document is None:
            (tmp_path / file).write_bytes(raw[name])
        else:
            write_json(tmp_path, file, document)
        error = refused_whole(cli, store, "import", file)
        assert expected in error, (name, error)


def test_numbers_beyond_what_billrun_bills_are_refused_on_the_command_line(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A-1", package()))
    cli.ok("import", "accounts.json")
    huge = "99999999999999999999999999999999.99"
    cases = [
        (("rates", "set", "EUR", "USD", "99999999999999999999999999999", "--date", "2026-01-01"),
         "is too large"),
        (("rates", "set", "EUR", "USD", "0.0000000000001", "--date", "2026-01-01"),
         "has more than 12 decimals"),
        (("charge", "add", "A-1", "--id", "c1", "--description", "x", "--amount", huge,
          "--date", "2026-01-05"), "--amount: "),
        (("payment", "record", "A-1", "--id", "p1", "--amount", huge, "--date", "2026-01-05"),
         "--amount: "),
        (("charge", "add", "A-1", "--id", "c\u202e2", "--description", "x", "--amount", "1.00",
          "--date", "2026-01-05"), "bidirectional control character (U+202E)"),
        (("charge", "add", "A-1", "--id", "c3", "--description", "a\nb", "--amount", "1.00",
          "--date", "2026-01-05"), "--description: "),
    ]  # fmt: skip
    for args, expected in cases:
        error = refused_whole(cli, store, *args)
        assert expected in error, (args, error)
    (tmp_path / "usage.csv").write_text(
        "account_id,usage_id,package_id,quantity,occurred_on\n"
        "A-1,u1,office,99999999999999999999999999999999,2026-01-05\n"
    )
    error = refused_whole(cli, store, "usage", "import", "usage.csv")
    assert "line 2, quantity:" in error and "is too large" in error


def test_an_absurd_period_is_refused_at_scheduling_with_the_limit_named(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A-1", package()))
    cli.ok("import", "accounts.json")

    error = refused_whole(
        cli, store, "run", "schedule", "all-time",
        "--period-start", "0001-01-01", "--period-end", "9999-12-31",
    )  # fmt: skip
    assert "outside the dates billrun bills, 1900-01-01 to 2199-12-31" in error
    error = refused_whole(
        cli, store, "run", "schedule", "decade",
        "--period-start", "2020-01-01", "--period-end", "2029-12-31",
    )  # fmt: skip
    assert "a bill run's period is at most 366 days" in error


def test_a_bill_group_template_that_cannot_work_is_refused_at_import(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    cases = {
        "syntax": ("{% for %}", "bill_groups[0].email_template: not a valid template"),
        "escape": (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "which the sandbox forbids",
        ),
        "huge width": ("{{ 'x'|center(500000000) }}", "a number above 200000"),
    }
    for name, (template, expected) in cases.items():
        document = {"bill_groups": [{"id": "g", "email_template": template}]}
        error = refused_whole(cli, store, "import", write_json(tmp_path, f"{name}.json", document))
        assert expected in error, (name, error)


def test_usage_whose_amount_would_be_beyond_what_billrun_bills_is_refused(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    write_import_file(tmp_path, account("A-1", package(usage_rate="999999999999")))
    cli.ok("import", "accounts.json")

    error = refused_whole(cli, store, "usage", "record", "A-1", "office", "999999999999",
                          "--id", "u1", "--date", "2026-01-05")  # fmt: skip

    assert "usage u1: 999999999999 x 999999999999 is beyond what billrun bills" in error
