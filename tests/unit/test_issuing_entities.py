"""Issuing entities: their details, number formats and own gapless sequences."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from domain.invoicing.documents import DocumentType
from domain.invoicing.entities import IssuingEntity, sequence_id
from domain.invoicing.entity_details import (
    DEFAULT_ENTITY,
    BankAccount,
    EntityDetails,
    NumberFormatError,
    check_number_format,
    format_number,
)
from domain.invoicing.invoice_numbers import InvoiceNumberSequence, format_document_number
from domain.shared.errors import DomainError
from domain.shared.ids import CREDIT_NOTE_NUMBER_SEQUENCE_ID, INVOICE_NUMBER_SEQUENCE_ID

AT = datetime(2026, 12, 7, tzinfo=UTC)


def belgian(**changes: object) -> EntityDetails:
    fields: dict[str, object] = {
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
        "bank_accounts": (BankAccount(currency="EUR", account_id="BE71096123456769"),),
        "invoice_number_format": "BE-{year}-{seq:06}",
        "credit_note_number_format": "BE-CN-{year}-{seq:06}",
    }
    fields.update(changes)
    return EntityDetails.model_validate(fields)


def test_the_brief_example_format() -> None:
    assert format_number("BE-{year}-{seq:06}", 1, 2026) == "BE-2026-000001"
    assert format_number("{seq}", 42, 2026) == "42"


def test_the_default_formats_print_the_historical_numbers() -> None:
    default = EntityDetails(
        legal_name="Billrun Demo Ltd",
        country_code="BE",
        bank_accounts=(BankAccount(currency="EUR", account_id="BE71096123456769"),),
    )
    entity = IssuingEntity.create(DEFAULT_ENTITY)
    entity.configure(default, AT)
    assert entity.number(1, DocumentType.INVOICE, 2026) == format_document_number(1, "invoice")
    assert entity.number(3, DocumentType.CREDIT_NOTE, 2026) == "CN-00000003"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("INV-{year}", "exactly one {seq}"),
        ("{seq}-{seq}", "exactly one {seq}"),
        ("{seq:6}", "unknown placeholder"),
        ("{sequence}", "unknown placeholder"),
        ("{yr}-{seq}", "unknown placeholder {yr}"),
        ("INV-{seq", "balanced braces"),
    ],
)
def test_a_bad_number_format_is_refused_saying_why(bad: str, says: str) -> None:
    with pytest.raises(NumberFormatError, match=re.escape(says)):
        check_number_format(bad)


def test_entity_details_are_validated_when_built() -> None:
    with pytest.raises(ValidationError, match="Peppol entity needs an electronic address"):
        belgian(endpoint_scheme=None, endpoint_id=None)
    with pytest.raises(ValidationError, match="one bank account per currency"):
        belgian(bank_accounts=(BankAccount(currency="EUR", account_id="A"),) * 2)
    with pytest.raises(ValidationError, match="unknown placeholder"):
        belgian(invoice_number_format="BE-{yy}-{seq}")
    with pytest.raises(ValidationError, match="country_code"):
        belgian(country_code="Belgium")


def test_sepa_only_for_euro() -> None:
    assert BankAccount(currency="EUR", account_id="BE71").payment_means == "58"
    assert BankAccount(currency="USD", account_id="123").payment_means == "30"
    details = belgian()
    assert details.bank_account("EUR") is not None
    assert details.bank_account("USD") is None


def test_configuring_the_same_details_again_records_nothing() -> None:
    entity = IssuingEntity.create("be")
    assert entity.configure(belgian(), AT)
    assert not entity.configure(belgian(), AT)
    assert entity.configure(belgian(payment_terms_days=14), AT)
    rebuilt = IssuingEntity.project(None, entity.collect_events())
    assert rebuilt is not None
    assert rebuilt.entity_id == "be"
    assert rebuilt.details == belgian(payment_terms_days=14)
    assert rebuilt.id == IssuingEntity.create("be").id  # deterministic id


def test_another_entity_never_prints_the_default_entitys_numbers() -> None:
    entity = IssuingEntity.create("be")
    with pytest.raises(DomainError, match="INV- and CN- numbers are the default entity's"):
        entity.configure(belgian(credit_note_number_format="CN-{seq:08}"), AT)
    assert entity.version == 0  # nothing recorded
    default = IssuingEntity.create(DEFAULT_ENTITY)
    assert default.configure(belgian(invoice_number_format="INV-{seq:08}"), AT)


def test_entity_ids_are_checked() -> None:
    for bad in ("", "BE", "be fr", "x" * 41):
        with pytest.raises(DomainError, match="entity id"):
            IssuingEntity.create(bad)


def test_each_entity_has_its_own_gapless_sequences_and_the_default_keeps_the_old_ones() -> None:
    assert sequence_id(DEFAULT_ENTITY, DocumentType.INVOICE) == INVOICE_NUMBER_SEQUENCE_ID
    assert sequence_id(DEFAULT_ENTITY, DocumentType.CREDIT_NOTE) == CREDIT_NOTE_NUMBER_SEQUENCE_ID
    ids = {
        sequence_id(entity, kind)
        for entity in (DEFAULT_ENTITY, "be", "fr")
        for kind in (DocumentType.INVOICE, DocumentType.CREDIT_NOTE)
    }
    assert len(ids) == 6
    be = InvoiceNumberSequence(sequence_id("be", DocumentType.INVOICE))
    fr = InvoiceNumberSequence(sequence_id("fr", DocumentType.INVOICE))
    assert be.reserve(2, "run-1", AT) == [1, 2]
    assert fr.reserve(1, "run-1", AT) == [1]
    assert be.reserve(1, "run-2", AT) == [3]
