"""Issuing entities: recording them (`billrun entity add`, the import file) and
reading them back, the default entity (the BILLRUN_SELLER_* settings) included."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from application.shared.app import Billing
from application.shared.errors import InvalidInput, Problem
from application.shared.ports import Seller
from domain.invoicing.entities import IssuingEntity
from domain.invoicing.entity_details import DEFAULT_ENTITY, EntityDetails
from domain.invoicing.events import IssuingEntityConfigured
from domain.shared.errors import DomainError
from infrastructure.topics import topic_of

ENTITY_CONFIGURED = topic_of(IssuingEntityConfigured)


class EntityExists(DomainError):
    pass


def entity_details(fields: dict[str, Any], source: str) -> EntityDetails:
    """Validated details, or InvalidInput naming each bad field and its value."""
    try:
        return EntityDetails.model_validate(fields)
    except ValidationError as error:
        problems = [
            Problem(
                ".".join(str(part) for part in e["loc"]) or "entity",
                f"{e['msg']}" + (f": {e['input']!r}" if "input" in e and e["loc"] else ""),
            )
            for e in error.errors()
        ]
        raise InvalidInput(source, problems) from None


def add_entity(billing: Billing, entity_id: str, details: EntityDetails) -> IssuingEntity:
    """Record a new issuing entity; refused (nothing written) when `entity_id` is the
    default entity's or already recorded (change it with the import file)."""
    if entity_id == DEFAULT_ENTITY:
        raise EntityExists(
            f"entity {DEFAULT_ENTITY!r} is the BILLRUN_SELLER_* settings: set those instead"
        )
    entity = IssuingEntity.create(entity_id)
    if billing.find_entity(entity_id) is not None:
        raise EntityExists(
            f"entity {entity_id!r} exists: change it through the import file's entities"
        )
    entity.configure(details, billing.clock())
    billing.save(entity)
    return entity


def recorded_entities(billing: Billing) -> list[IssuingEntity]:
    """Every recorded issuing entity, by id."""
    ids = billing.queries.originators(ENTITY_CONFIGURED)
    return sorted(billing.load_many(IssuingEntity, ids).values(), key=lambda e: e.entity_id)


def default_entity(seller: Seller) -> dict[str, Any]:
    """The default entity, as the BILLRUN_SELLER_* settings describe it."""
    return {
        "id": DEFAULT_ENTITY,
        "legal_name": seller.name,
        "street": seller.street,
        "city": seller.city,
        "postal_code": seller.postal_code,
        "country_code": seller.country_code,
        "vat_id": seller.vat_id,
        "company_id": seller.company_id,
        "email": seller.email,
        "endpoint_scheme": seller.endpoint_scheme,
        "endpoint_id": seller.endpoint_id,
        "peppol": seller.peppol,
        "bank_accounts": [
            {"currency": currency, "account_id": account, "bic": bic}
            for currency, account, bic in seller.bank_accounts
        ]
        or [{"currency": None, "account_id": seller.iban, "bic": seller.bic}],
        "payment_terms_days": seller.payment_terms_days,
        "invoice_number_format": "INV-{seq:08}",
        "credit_note_number_format": "CN-{seq:08}",
    }


def entity_json(entity: IssuingEntity) -> dict[str, Any]:
    assert entity.details is not None
    return {"id": entity.entity_id, **entity.details.model_dump(mode="json")}
