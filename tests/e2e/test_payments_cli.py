"""`billrun payment ...`, `billrun ar aging` and `billrun account balance|terms|autopay`
as an operator runs them, after real bill runs.

The runs bill 2020, so that every invoice's due date is in the past whatever day
the tests run: `invoice list` shows payment status as of today.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from application.receivables.collection import Collector
from application.shared.app import Billing
from domain.receivables.collection import CollectionType
from infrastructure.payment_gateway import SandboxGateway
from tests.conftest import account, package, write_import_file
from tests.e2e.conftest import Cli

ACCOUNTS = [
    account("ACME-001", package("office", "100.00", start_date="2020-01-01")),
    account("YEN-002", package("desk", "5000", start_date="2020-01-01"), currency="JPY"),
]


def billed(cli: Cli, tmp_path: Path, *months: str) -> None:
    """Import the accounts and bill each month of 2020 given ("01", "02", ...)."""
    write_import_file(tmp_path, *ACCOUNTS)
    cli.ok("import", "accounts.json")
    for month in months:
        end = {"01": "31", "02": "29", "03": "31"}[month]
        cli.ok("run", "schedule", f"2020-{month}", "--period-start", f"2020-{month}-01",
               "--period-end", f"2020-{month}-{end}")  # fmt: skip
        cli.ok("run", "execute", f"2020-{month}", "--json")


def squeezed(text: str) -> str:
    """Text with table rules gone and runs of whitespace made one space, whatever the
    terminal width did."""
    return " ".join(text.replace("│", " ").replace("┃", " ").split())


def invoices_of(cli: Cli, account_id: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = cli.json("invoice", "list", "--account", account_id, "--json")
    return listed


def test_a_payment_pays_the_oldest_invoices_first_and_the_rest_goes_to_credit(
    cli: Cli, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01", "02")
    args = ("payment", "record", "ACME-001", "--id", "BANK-1", "--amount", "250.00",
            "--date", "2020-04-10", "--reference", "SEPA 1")  # fmt: skip

    recorded = cli.json(*args, "--json")

    january, february = invoices_of(cli, "ACME-001")
    assert recorded == {
        "account": "ACME-001",
        "currency": "EUR",
        "recorded": True,
        "payment": {
            "payment_id": "BANK-1",
            "amount": "250.00",
            "received_on": "2020-04-10",
            "method": "manual",
            "reference": "SEPA 1",
            "allocations": [
                {
                    "invoice_id": january["id"],
                    "number": "INV-00000001",
                    "amount": "100.00",
                    "still_open": "0.00",
                },
                {
                    "invoice_id": february["id"],
                    "number": "INV-00000003",
                    "amount": "100.00",
                    "still_open": "0.00",
                },
            ],
            "credit": "50.00",
        },
        "balance": "-50.00",
        "credit_balance": "50.00",
    }
    assert [(i["due_date"], i["payment_status"], i["paid"]) for i in (january, february)] == [
        ("2020-03-01", "paid", "100.00"),
        ("2020-03-30", "paid", "100.00"),
    ]
    balance = cli.json("account", "balance", "ACME-001", "--as-of", "2020-04-10", "--json")
    assert (balance["balance"], balance["credit"], balance["open_items"]) == ("-50.00", "50.00", [])
    assert balance["payment_terms"] == {"days": 30, "source": "default"}
    listed = cli.json("payment", "list", "--json")
    assert [(p["account"], p["payment_id"], p["credit"]) for p in listed] == [
        ("ACME-001", "BANK-1", "50.00")
    ]
    assert [a["number"] for a in listed[0]["allocations"]] == ["INV-00000001", "INV-00000003"]
    # The next invoice is paid from the credit as it is posted.
    cli.ok("run", "schedule", "2020-03", "--period-start", "2020-03-01",
           "--period-end", "2020-03-31")  # fmt: skip
    cli.ok("run", "execute", "2020-03", "--json")
    march = invoices_of(cli, "ACME-001")[-1]
    assert (march["payment_status"], march["paid"], march["open"]) == (
        "overdue", "50.00", "50.00"
    )  # fmt: skip
    text = squeezed(cli.ok("payment", "record", "ACME-001", "--id", "BANK-2", "--amount", "20",
                           "--date", "2020-05-01").stdout)  # fmt: skip
    assert "payment BANK-2 recorded on ACME-001: 20.00 EUR received 2020-05-01" in text
    assert "invoice INV-00000005 20.00 EUR 30.00 EUR" in text
    assert "balance now 30.00 EUR (credit 0.00 EUR)" in text


def test_recording_the_same_payment_again_records_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01")
    args = ("payment", "record", "YEN-002", "--id", "wire-7", "--amount", "3000",
            "--date", "2020-02-15")  # fmt: skip
    cli.ok(*args)
    head = store.queries.head()

    again = cli.ok(*args)

    assert squeezed(again.stdout) == (
        "payment wire-7 was already recorded on YEN-002 (3000 JPY on 2020-02-15); nothing written."
    )
    assert cli.json(*args, "--json")["recorded"] is False
    assert store.queries.head() == head


def test_a_refused_payment_says_why_and_writes_nothing(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01")
    cli.ok("payment", "record", "ACME-001", "--id", "p-1", "--amount", "10.00",
           "--date", "2020-02-01")  # fmt: skip
    head = store.queries.head()
    refusals = [
        (("NOPE-404", "--id", "p-2", "--amount", "5.00", "--date", "2020-02-01"),
         "error: no account 'NOPE-404'"),
        (("ACME-001", "--id", "p-2", "--amount", "12,50", "--date", "2020-02-01"),
         'error: --amount: not a decimal: "12,50"'),
        (("ACME-001", "--id", "p-2", "--amount", "1.001", "--date", "2020-02-01"),
         "error: payment p-2: 1.001 is not an amount of EUR (at most its minor unit's "
         "decimals)"),
        (("YEN-002", "--id", "p-2", "--amount", "10.5", "--date", "2020-02-01"),
         "error: payment p-2: 10.5 is not an amount of JPY"),
        (("ACME-001", "--id", "p-2", "--amount", "0", "--date", "2020-02-01"),
         "error: payment p-2: amount must be positive, not 0"),
        (("ACME-001", "--id", "p-2", "--amount", "-5.00", "--date", "2020-02-01"),
         "error: payment p-2: amount must be positive, not -5.00"),
        (("ACME-001", "--id", "p-1", "--amount", "11.00", "--date", "2020-02-01"),
         "error: payment p-1 is already recorded for ACME-001 with 10.00 EUR on 2020-02-01"),
        (("ACME-001", "--id", "p-2", "--amount", "5.00", "--date", "2020-02-30"),
         'error: --date: "2020-02-30" is not a date: February 2020 has 29 days'),
    ]  # fmt: skip

    for args, message in refusals:
        result = cli("payment", "record", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == "", args
        assert squeezed(result.stderr).startswith(message), (args, result.stderr)
        assert "Traceback" not in result.stderr

    assert store.queries.head() == head, "a refusal writes nothing"
    assert [p["payment_id"] for p in cli.json("payment", "list", "--json")] == ["p-1"]


def test_aging_and_balance_show_what_is_open_by_days_past_due(cli: Cli, tmp_path: Path) -> None:
    billed(cli, tmp_path, "01", "02")  # due 2020-03-01 and 2020-03-30 (30 days net)
    cli.ok("payment", "record", "ACME-001", "--id", "p-1", "--amount", "40.00",
           "--date", "2020-03-15")  # fmt: skip

    aging = cli.json("ar", "aging", "--as-of", "2020-04-05", "--json")
    balance = cli.json("account", "balance", "ACME-001", "--as-of", "2020-04-05", "--json")

    assert aging == {
        "as_of": "2020-04-05",
        "buckets": ["current", "1-30", "31-60", "61-90", "over_90"],
        "accounts": [
            {"account": "ACME-001", "currency": "EUR",
             "buckets": {"current": "0.00", "1-30": "100.00", "31-60": "60.00",
                         "61-90": "0.00", "over_90": "0.00"},
             "open": "160.00", "credit": "0.00", "balance": "160.00", "open_items": 2},
            {"account": "YEN-002", "currency": "JPY",
             "buckets": {"current": "0", "1-30": "5000", "31-60": "5000", "61-90": "0",
                         "over_90": "0"},
             "open": "10000", "credit": "0", "balance": "10000", "open_items": 2},
        ],
        "totals": [
            {"currency": "EUR",
             "buckets": {"current": "0.00", "1-30": "100.00", "31-60": "60.00",
                         "61-90": "0.00", "over_90": "0.00"},
             "open": "160.00", "credit": "0.00", "balance": "160.00", "open_items": 2},
            {"currency": "JPY",
             "buckets": {"current": "0", "1-30": "5000", "31-60": "5000", "61-90": "0",
                         "over_90": "0"},
             "open": "10000", "credit": "0", "balance": "10000", "open_items": 2},
        ],
    }  # fmt: skip
    assert balance["aging"] == aging["accounts"][0]["buckets"]
    assert [(i["number"], i["due_on"], i["paid"], i["open"], i["days_overdue"], i["status"])
            for i in balance["open_items"]] == [
        ("INV-00000001", "2020-03-01", "40.00", "60.00", 35, "overdue"),
        ("INV-00000003", "2020-03-30", "0.00", "100.00", 6, "overdue"),
    ]  # fmt: skip
    early = cli.json("account", "balance", "ACME-001", "--as-of", "2020-03-01", "--json")
    assert [i["status"] for i in early["open_items"]] == ["partially_paid", "unpaid"]
    table = squeezed(cli.ok("ar", "aging", "--as-of", "2020-04-05").stdout)
    assert "ACME-001 EUR 0.00 100.00 60.00 0.00 0.00 160.00 0.00 160.00" in table
    assert "total JPY 0 5000 5000 0 0 10000 0 10000" in table
    text = squeezed(cli.ok("account", "balance", "ACME-001", "--as-of", "2020-04-05").stdout)
    assert "balance 160.00 EUR" in text
    assert "INV-00000001 2020-03-01 100.00 40.00 60.00 35 overdue" in text
    assert "INV-00000003 2020-03-30 100.00 0.00 100.00 6 overdue" in text


def test_payment_terms_set_the_due_date_of_the_next_invoices_and_auto_pay_is_masked(
    cli: Cli, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01")

    set_terms = cli.ok("account", "terms", "ACME-001", "--net", "14")
    again = cli.ok("account", "terms", "ACME-001", "--net", "14")
    autopay = cli.ok("account", "autopay", "ACME-001", "--token", "tok_approved_secret_4242")

    assert squeezed(set_terms.stdout) == "payment terms of ACME-001 are now net 14 days (account)"
    assert squeezed(again.stdout) == "payment terms of ACME-001 were already net 14 days (account)"
    assert squeezed(autopay.stdout) == "auto-pay of ACME-001 is now on"
    cli.ok("run", "schedule", "2020-02", "--period-start", "2020-02-01",
           "--period-end", "2020-02-29")  # fmt: skip
    cli.ok("run", "execute", "2020-02", "--json")
    january, february = invoices_of(cli, "ACME-001")
    assert (january["due_date"], february["due_date"]) == ("2020-03-01", "2020-03-14")
    balance = cli.ok("account", "balance", "ACME-001", "--json").stdout
    assert (
        "secret" not in balance and "secret" not in cli.ok("account", "balance", "ACME-001").stdout
    )
    assert '"autopay_token": "tok_...4242"' in balance
    shown = cli.json("invoice", "show", february["id"], "--json")
    assert (shown["due_date"], shown["payment_status"]) == ("2020-03-14", "overdue")
    assert "due: 2020-03-14 payment: overdue" in squeezed(cli.ok("invoice", "show", "3").stdout)

    cli.ok("account", "terms", "ACME-001", "--default")
    cli.ok("account", "autopay", "ACME-001", "--off")
    after = cli.json("account", "balance", "ACME-001", "--json")
    assert (after["payment_terms"], after["autopay"], after["autopay_token"]) == (
        {"days": 30, "source": "default"}, False, None
    )  # fmt: skip
    both = cli("account", "terms", "ACME-001", "--net", "5", "--default")
    assert both.returncode == 2 and "give --net DAYS or --default" in squeezed(both.stderr)
    too_long = cli("account", "terms", "ACME-001", "--net", "400")
    assert too_long.returncode == 2
    assert "payment terms are 0 to 365 days net, not 400" in squeezed(too_long.stderr)


def test_reconcile_records_what_the_gateway_did_with_a_pending_collection(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01")
    cli.ok("account", "autopay", "ACME-001", "--token", "tok_timeout_visa")
    gateway = SandboxGateway(store.recorder.datastore)  # type: ignore[attr-defined]
    attempt = Collector(store, gateway).collect(
        "ACME-001", "collect-1", CollectionType.ACCOUNT_BALANCE, date(2020, 3, 5)
    )
    assert attempt.attempt is not None and attempt.attempt.pending  # the answer was lost

    reconciled = cli.json("payment", "reconcile", "--json")
    again = cli.ok("payment", "reconcile")

    assert [(r["account"], r["attempt"]["amount"], r["attempt"]["outcome"],
             r["attempt"]["pending"]) for r in reconciled] == [
        ("ACME-001", "100.00", "approved", False)
    ]  # fmt: skip
    assert squeezed(again.stdout) == "no pending collection attempts"
    one = cli.ok("payment", "reconcile", "--account", "ACME-001")
    assert squeezed(one.stdout) == "ACME-001: no pending collection attempt"
    payments = cli.json("payment", "list", "--account", "ACME-001", "--json")
    assert [(p["method"], p["amount"], p["allocations"][0]["number"]) for p in payments] == [
        ("collection", "100.00", "INV-00000001")
    ]
    assert len(gateway.charges()) == 1, "charged once"


def test_a_reconciled_collection_is_dated_the_day_the_gateway_charged_not_the_day_found(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    billed(cli, tmp_path, "01")
    cli.ok("account", "autopay", "ACME-001", "--token", "tok_timeout_visa")
    # The gateway takes the money on 5 March 2020 and the answer is lost.
    on_march_5 = SandboxGateway(
        store.recorder.datastore,  # type: ignore[attr-defined]
        clock=lambda: datetime(2020, 3, 5, 23, 30, tzinfo=UTC),
    )
    Collector(store, on_march_5).collect(
        "ACME-001", "collect-1", CollectionType.ACCOUNT_BALANCE, date(2020, 3, 5)
    )

    cli.ok("payment", "reconcile")  # today, years later

    payments = cli.json("payment", "list", "--account", "ACME-001", "--json")
    assert [(p["method"], p["received_on"]) for p in payments] == [("collection", "2020-03-05")]
