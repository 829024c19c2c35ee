"""Issuing entities end to end: imported (all or nothing), billing their bill
groups, numbering with their own gapless sequences, and racing closers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest

from application.billing import importing
from application.billing.import_document import parse_import
from application.invoicing.credit_notes import credit_invoice
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput
from domain.invoicing.credit_notes import CreditTerms
from domain.invoicing.documents import DocumentType
from domain.invoicing.entities import IssuingEntity, sequence_id
from domain.invoicing.events import BillGroupConfigured, InvoiceClosed, IssuingEntityConfigured
from domain.runs.settings import Selection
from domain.shared.ids import entity_uuid, invoice_uuid
from domain.shared.periods import Period
from tests.conftest import SteppingClock, account, package
from tests.integration.helpers import BILLRUN, EventLog, cli_env, run_cli
from tests.integration.test_race import Lockstep

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))

BELGIUM: dict[str, Any] = {
    "id": "be",
    "legal_name": "Billrun Belgium SRL",
    "street": "1 Ledger Street",
    "city": "Brussels",
    "postal_code": "1000",
    "country_code": "BE",
    "vat_id": "BE0123456749",
    "company_id": "0123456749",
    "endpoint_scheme": "0208",
    "endpoint_id": "0123456749",
    "peppol": True,
    "bank_accounts": [{"currency": "EUR", "account_id": "BE71096123456769"}],
    "invoice_number_format": "BE-{year}-{seq:06}",
    "credit_note_number_format": "BE-CN-{year}-{seq:06}",
}
FRANCE: dict[str, Any] = {
    "id": "fr",
    "legal_name": "Billrun France SAS",
    "street": "2 rue du Grand Livre",
    "city": "Paris",
    "postal_code": "75002",
    "country_code": "FR",
    "vat_id": "FR44732829320",
    "bank_accounts": [{"currency": "EUR", "account_id": "FR7630006000011234567890189"}],
    "invoice_number_format": "FR{year}{seq:05}",
    "credit_note_number_format": "FR-AV{year}{seq:05}",
    "payment_terms_days": 45,
}


def import_file(app: Billing, document: dict[str, Any]) -> importing.ImportSummary:
    raw = json.dumps(document).encode()
    return importing.import_accounts(app, parse_import(raw, "test.json"), "test.json")


def world(accounts_per_group: int) -> dict[str, Any]:
    return {
        "entities": [BELGIUM, FRANCE],
        "bill_groups": [
            {"id": "be-group", "issuing_entity": "be"},
            {"id": "fr-group", "issuing_entity": "fr"},
        ],
        "accounts": [
            account(f"{group}-{n:03d}", package(), bill_group=f"{group}-group")
            for group in ("be", "fr", "dflt")
            for n in range(accounts_per_group)
        ],
    }


def closed(log: EventLog) -> list[dict[str, Any]]:
    return list(log.states(InvoiceClosed))


@pytest.fixture
def second_billing(es_env: dict[str, str]) -> Iterator[Billing]:
    app = Billing(es_env, clock=SteppingClock())
    try:
        yield app
    finally:
        app.close()


def test_each_entity_numbers_its_own_invoices_and_the_default_keeps_inv(
    billing: Billing, database_url: str
) -> None:
    summary = import_file(billing, world(3))
    assert (summary.entities_added, summary.bill_groups_added) == (2, 2)
    assert import_file(billing, world(3)).events == 0  # idempotent
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, 2).execute("jan")

    with EventLog(database_url) as log:
        states = closed(log)
    printed = sorted(
        (s["issued_by"] or "default", s["printed_number"] or f"INV-{s['number']:08d}")
        for s in states
    )
    assert printed == [
        ("be", "BE-2026-000001"), ("be", "BE-2026-000002"), ("be", "BE-2026-000003"),
        ("default", "INV-00000001"), ("default", "INV-00000002"), ("default", "INV-00000003"),
        ("fr", "FR202600001"), ("fr", "FR202600002"), ("fr", "FR202600003"),
    ]  # fmt: skip
    assert billing.get_sequence(sequence_id("be", DocumentType.INVOICE)).last_number == 3
    assert billing.get_sequence(sequence_id("fr", DocumentType.INVOICE)).last_number == 3
    assert billing.get_invoice_sequence().last_number == 3
    # The entity's payment terms when neither the account nor the group has any.
    terms = {(s["issued_by"], s["due_date"]) for s in states}
    assert terms == {(None, "2026-03-02"), ("be", "2026-03-02"), ("fr", "2026-03-17")}


def test_an_unknown_entity_or_a_bad_one_is_refused_and_nothing_is_written(
    billing: Billing, database_url: str
) -> None:
    document = world(1)
    document["bill_groups"].append({"id": "xx-group", "issuing_entity": "xx"})
    with pytest.raises(InvalidInput) as refused:
        import_file(billing, document)
    assert "bill_groups[2].issuing_entity" in str(refused.value)
    assert "no issuing entity 'xx'" in str(refused.value)

    bad = world(1)
    bad["entities"][1] = {**FRANCE, "invoice_number_format": "FR-{yr}-{seq}"}
    with pytest.raises(InvalidInput) as refused:
        parse_import(json.dumps(bad).encode(), "bad.json")
    assert "entities[1].invoice_number_format" in str(refused.value)
    assert "unknown placeholder {yr}" in str(refused.value)
    assert billing.load_many(IssuingEntity, [entity_uuid("be"), entity_uuid("fr")]) == {}
    with EventLog(database_url) as log:
        assert log.count(IssuingEntityConfigured) == 0
        assert log.count(BillGroupConfigured) == 0


def test_two_closers_racing_leave_each_entity_gapless(
    billing: Billing, second_billing: Billing, database_url: str
) -> None:
    import_file(billing, world(8))
    schedule_run(billing, "east", JANUARY, None, Selection(groups=("be-group", "dflt-group")))
    schedule_run(billing, "west", JANUARY, None, Selection(groups=("fr-group", "be-group")))
    lockstep = Lockstep()
    with ThreadPoolExecutor(max_workers=2) as pool:
        east = pool.submit(lockstep.execute, billing, "east", 2)
        west = pool.submit(lockstep.execute, second_billing, "west", 2)
        executions = [east.result(timeout=60), west.result(timeout=60)]
    assert sum(e.conflicts for e in executions) >= 1
    with EventLog(database_url) as log:
        states = closed(log)
    by_entity: dict[str, list[int]] = {}
    for state in states:
        by_entity.setdefault(state["issued_by"] or "default", []).append(state["number"])
    assert {entity: sorted(numbers) for entity, numbers in by_entity.items()} == {
        entity: list(range(1, 9)) for entity in ("be", "default", "fr")
    }


def test_the_cli_adds_lists_and_shows_entities_and_refuses_bad_ones_whole(
    database_url: str,
) -> None:
    run_cli(
        database_url, "entity", "add", "be", "--name", "Billrun Belgium SRL", "--country", "BE",
        "--endpoint", "0208:0123456749", "--peppol", "--bank", "EUR=BE71096123456769",
        "--invoice-format", "BE-{year}-{seq:06}",
    )  # fmt: skip
    listed = json.loads(run_cli(database_url, "entity", "list", "--json").stdout)
    assert [e["id"] for e in listed["entities"]] == ["default", "be"]
    assert listed["entities"][0]["invoice_number_format"] == "INV-{seq:08}"
    shown = json.loads(run_cli(database_url, "entity", "show", "be", "--json").stdout)
    assert shown["credit_note_number_format"] == "BE-CN-{year}-{seq:06}"
    assert shown["bank_accounts"] == [
        {"currency": "EUR", "account_id": "BE71096123456769", "bic": None}
    ]
    refused = subprocess.run(
        [str(BILLRUN), "entity", "add", "fr", "--name", "X", "--country", "France",
         "--bank", "EUR=1", "--invoice-format", "FR-{yr}-{seq}"],
        env=cli_env(database_url, 5), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "country_code" in refused.stderr and "'France'" in refused.stderr
    assert "unknown placeholder {yr}" in refused.stderr
    listed = json.loads(run_cli(database_url, "entity", "list", "--json").stdout)
    assert [e["id"] for e in listed["entities"]] == ["default", "be"]


def test_an_entitys_invoice_is_found_by_its_printed_number(
    billing: Billing, database_url: str
) -> None:
    import_file(billing, world(1))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, 5).execute("jan")
    shown = json.loads(run_cli(database_url, "invoice", "show", "BE-2026-000001", "--json").stdout)
    assert shown["display_number"] == "BE-2026-000001"
    assert shown["account"] == "be-000"
    default = json.loads(run_cli(database_url, "invoice", "show", "INV-00000001", "--json").stdout)
    assert default["account"] == "dflt-000"
    listed = json.loads(run_cli(database_url, "invoice", "list", "--run", "jan", "--json").stdout)
    numbers = sorted(row["display_number"] for row in listed)
    assert numbers == ["BE-2026-000001", "FR202600001", "INV-00000001"]


def test_an_entitys_credit_notes_are_numbered_by_its_own_credit_note_sequence(
    billing: Billing,
) -> None:
    import_file(billing, world(2))
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, 5).execute("jan")
    accounts = ("be-000", "be-001", "dflt-000", "fr-000")
    for account_id in accounts:  # issued: a draft is cancelled, not credited
        invoice = billing.get_invoice(invoice_uuid("jan", account_id))
        invoice.approve(billing.clock())
        billing.save(invoice)
    notes = [
        credit_invoice(billing, invoice_uuid("jan", account_id), CreditTerms(reason="outage"))
        for account_id in accounts
    ]
    assert [n.credit_note.display_number for n in notes] == [
        "BE-CN-2026-000001", "BE-CN-2026-000002", "CN-00000001", "FR-AV202600001"
    ]  # fmt: skip
    assert [n.credit_note.issued_by for n in notes] == ["be", "be", None, "fr"]
    assert billing.get_sequence(sequence_id("be", DocumentType.CREDIT_NOTE)).last_number == 2


def test_the_year_in_a_number_format_does_not_restart_the_sequence(
    billing: Billing, database_url: str
) -> None:
    """`{year}` prints the issue year; `{seq}` runs on across New Year, gapless and
    unique (docs/einvoicing.md: a yearly restart is not built)."""
    import_file(billing, world(1))
    for run_id, start, end in (
        ("dec", date(2026, 12, 1), date(2026, 12, 31)),
        ("jan", date(2027, 1, 1), date(2027, 1, 31)),
    ):
        schedule_run(billing, run_id, Period(start, end), None, Selection())
        BillRunExecutor(billing, 5).execute(run_id)
    with EventLog(database_url) as log:
        printed = [s["printed_number"] for s in closed(log) if s["issued_by"] == "be"]
    assert printed == ["BE-2026-000001", "BE-2027-000002"]
    assert billing.get_sequence(sequence_id("be", DocumentType.INVOICE)).last_number == 2
