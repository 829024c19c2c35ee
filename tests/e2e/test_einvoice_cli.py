"""E-invoices from the command line: buyer details set by command, each format of
an invoice and of a credit note written and valid, and a 3-decimal currency's
CII refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import account, package
from tests.e2e.conftest import Cli

validation = pytest.importorskip("infrastructure.einvoice.validation")


def test_an_invoice_and_its_credit_note_in_every_format(cli: Cli, tmp_path: Path) -> None:
    try:
        artefacts = validation.artefacts_folder()
    except validation.ArtefactsMissing as missing:
        pytest.skip(str(missing))
    document = {
        "bill_groups": [{"id": "paper", "delivery": "file"}],
        "accounts": [
            account("ACME", package("office", "100.00"), bill_group="paper") | {"tax_rate": "21"},
            account("KUWAIT", package("office", "12.345"), bill_group="paper", currency="KWD"),
        ],
    }
    (tmp_path / "accounts.json").write_text(json.dumps(document))
    cli.ok("import", "accounts.json")
    refused = cli("account", "buyer", "ACME", "--country", "Belgium")
    assert refused.returncode == 2 and "not an ISO 3166-1 alpha-2 code" in refused.stderr
    buyer = cli.json("account", "buyer", "ACME", "--street", "Rue de la Loi 16", "--city",
                     "Brussels", "--postcode", "1000", "--country", "BE", "--json")  # fmt: skip
    assert (buyer["country_code"], buyer["changed"]) == ("BE", True)
    cli.ok("account", "buyer", "KUWAIT", "--country", "KW", "--city", "Kuwait City")
    cli.ok("run", "schedule", "jan", "--period-start", "2026-01-01", "--period-end", "2026-01-31")
    cli.ok("run", "execute", "jan", "--json")
    cli.ok("invoice", "approve", "INV-00000001")
    cli.ok("invoice", "credit", "INV-00000001", "--amount", "10.00", "--reason", "Outage")

    for number in ("INV-00000001", "CN-00000001"):
        written = cli.json("invoice", "documents", number, "--out", "out", "--json")
        assert {d["format"] for d in written} == {"pdf", "xml", "cii", "facturx"}
        ubl = (tmp_path / "out" / f"{number}.ubl.xml").read_bytes()
        cii = (tmp_path / "out" / f"{number}.cii.xml").read_bytes()
        assert validation.fatal(validation.findings_ubl(ubl, artefacts)) == []
        assert validation.fatal(validation.findings_cii(cii)) == []
        assert (tmp_path / "out" / f"{number}.facturx.pdf").read_bytes().startswith(b"%PDF")

    kwd = cli("invoice", "documents", "INV-00000002", "--format", "cii")
    assert kwd.returncode == 2
    assert "no cii document for KWD (3 decimals; EN 16931 allows 2)" in kwd.stderr
    every = cli("invoice", "documents", "INV-00000002", "--json")  # what it can have
    assert every.returncode == 0 and "not available" in every.stderr
    assert {d["format"] for d in json.loads(every.stdout)} == {"pdf", "xml"}
    plain = cli.json("invoice", "documents", "INV-00000002", "-f", "ubl", "--json")
    ubl = Path(plain[0]["path"]).read_bytes()
    assert b"CustomizationID" not in ubl
    xsd = [f for f in validation.findings_ubl(ubl, artefacts) if f.source == "xsd"]
    assert xsd == []
