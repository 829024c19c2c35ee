"""`billrun invoice credit` as an operator runs it: a billed and approved invoice
credited in part, then in full refused as too much, a draft refused; the credit
note found by its own number, listed with the run's invoices, and its PDF."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from application.shared.app import Billing
from domain.shared.ids import invoice_uuid
from tests.conftest import account, package
from tests.e2e.conftest import Cli


def test_crediting_an_invoice_from_the_command_line(
    cli: Cli, store: Billing, tmp_path: Path
) -> None:
    document = {
        "bill_groups": [{"id": "paper", "delivery": "file"}],
        "accounts": [
            account(
                "ACME", package("office", "100.00"), package("desk", "40.00"), bill_group="paper"
            )
            | {"tax_rate": "21"},
            account("DRAFTY", package("office", "80.00"), bill_group="paper"),
        ],
    }
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan", "--json")
    acme = store.get_invoice(invoice_uuid("jan", "ACME"))
    assert (acme.display_number, acme.total) == ("INV-00000001", Decimal("169.40"))
    cli.ok("invoice", "approve", "INV-00000001")

    # Usage mistakes and refusals: exit 2, `error: ...`, nothing written.
    head = store.queries.head()
    for args, said in (
        (["--reason", "x"], "--full, or --amount"),
        (["--full", "--amount", "5", "--reason", "x"], "--full, or --amount"),
        (["--full"], "--reason is required"),
        (["--amount", "5.001", "--reason", "x"], "not an amount of EUR"),
        (["--amount", "5", "--tax-rate", "6", "--reason", "x"], "no line at 6 %"),
        (["--amount", "500", "--reason", "x"], "EUR 169.40 of 169.40 remains creditable"),
    ):
        refused = cli("invoice", "credit", "INV-00000001", *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.startswith("error: ") and said in refused.stderr, refused.stderr
    drafty = cli("invoice", "credit", "2", "--full", "--reason", "x")
    assert drafty.returncode == 2
    assert "is draft" in drafty.stderr and "billrun invoice cancel INV-00000002" in drafty.stderr
    assert store.queries.head() == head

    issued = cli.json("invoice", "credit", "INV-00000001", "--amount", "50.00",
                      "--reason", "Outage on 12 January", "--json")  # fmt: skip
    assert issued["created"] is True
    note = issued["credit_note"]
    assert (note["display_number"], note["document_type"], note["corrects_number"]) == (
        "CN-00000001", "credit_note", "INV-00000001",
    )  # fmt: skip
    assert (note["total"], issued["amount"], issued["creditable"]) == ("-60.50", "60.50", "108.90")
    assert (note["review_status"], note["credit_reason"]) == ("approved", "Outage on 12 January")
    assert issued["balance"] == "108.90"

    # The same command again: the same credit note, nothing written.
    head = store.queries.head()
    again = cli.ok("invoice", "credit", "1", "--amount", "50", "--reason", "Outage on 12 January")
    assert "credit note CN-00000001 was already issued for invoice INV-00000001" in again.stdout
    assert "nothing written" in again.stdout
    assert store.queries.head() == head

    # A full credit is more than what remains.
    too_much = cli("invoice", "credit", "INV-00000001", "--full", "--reason", "cancelled")
    assert too_much.returncode == 2
    assert (
        "EUR 108.90 of 169.40 remains creditable (credited: CN-00000001 60.50)" in too_much.stderr
    )

    # The rest, by its own --id.
    rest = cli.ok("invoice", "credit", "INV-00000001", "--amount", "90", "--reason", "Rest",
                  "--id", "rest")  # fmt: skip
    assert "credit note CN-00000002 issued for invoice INV-00000001 (ACME)" in rest.stdout
    assert "EUR 0.00 of 169.40 remains creditable" in rest.stdout
    assert "account ACME balance: EUR 0.00" in rest.stdout

    listed = cli.json("invoice", "list", "--run", "jan", "--json")
    assert [(i["display_number"], i["document_type"]) for i in listed] == [
        ("INV-00000001", "invoice"), ("INV-00000002", "invoice"),
        ("CN-00000001", "credit_note"), ("CN-00000002", "credit_note"),
    ]  # fmt: skip
    shown = cli.json("invoice", "show", "CN-00000002", "--json")
    assert (shown["total"], shown["corrects"]) == ("-108.90", str(acme.id))
    credited = cli.json("invoice", "show", "INV-00000001", "--json")
    assert [(c["credit_note"], c["amount"]) for c in credited["credits"]] == [
        ("CN-00000001", "60.50"), ("CN-00000002", "108.90"),
    ]  # fmt: skip
    table = cli.ok("invoice", "show", "CN-00000001").stdout
    assert "Credit note CN-00000001: ACME, run jan" in table
    assert "corrects: INV-00000001" in table and "reason: Outage on 12 January" in table

    pdf = cli.json("invoice", "pdf", "CN-00000001", "--json")
    assert Path(pdf["path"]).read_bytes().startswith(b"%PDF-")
