"""The IssuingEntity aggregate: one legal entity a deployment bills as.

Each entity numbers its invoices and credit notes with gapless sequences of its
own (`InvoiceNumberSequence` aggregates whose ids derive from the entity code),
so two entities never share or skip numbers. The default entity keeps the
historical sequences and formats, so existing numbers stay what they are.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.invoicing.documents import DocumentType
from domain.invoicing.entity_details import (
    DEFAULT_ENTITY,
    EntityDetails,
    format_number,
)
from domain.invoicing.events import IssuingEntityConfigured
from domain.shared.errors import DomainError
from domain.shared.ids import (
    CREDIT_NOTE_NUMBER_SEQUENCE_ID,
    INVOICE_NUMBER_SEQUENCE_ID,
    entity_sequence_uuid,
    entity_uuid,
)
from domain.shared.model import Aggregate

_CODE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


class IssuingEntity(Aggregate):
    kind = "entity"

    def __init__(self, aggregate_id: UUID) -> None:
        super().__init__(aggregate_id)
        self.entity_id = ""
        self.details: EntityDetails | None = None

    @classmethod
    def create(cls, entity_id: str) -> IssuingEntity:
        if not entity_id or not set(entity_id) <= _CODE_CHARS or len(entity_id) > 40:
            raise DomainError(f"entity id {entity_id!r}: 1 to 40 of a-z, 0-9, '-' and '_'")
        entity = cls(entity_uuid(entity_id))
        entity.entity_id = entity_id
        return entity

    def configure(self, details: EntityDetails, at: datetime) -> bool:
        """Set the entity's details; the same details again record nothing.
        Returns whether anything was recorded."""
        if self.details == details:
            return False
        refused = borrowed_format(self.entity_id, details)
        if refused:
            raise DomainError(refused)
        self._trigger(IssuingEntityConfigured, at, entity_id=self.entity_id, details=details)
        return True

    def _when_IssuingEntityConfigured(self, event: IssuingEntityConfigured) -> None:
        self.entity_id = event.entity_id
        self.details = event.details

    def number(self, seq: int, document_type: DocumentType | str, year: int) -> str:
        """The printed number of this entity's `seq`-th document of that type."""
        if self.details is None:
            raise DomainError(f"entity {self.entity_id} has no details yet")
        number_format = (
            self.details.credit_note_number_format
            if document_type == DocumentType.CREDIT_NOTE
            else self.details.invoice_number_format
        )
        return format_number(number_format, seq, year)


def borrowed_format(entity_id: str, details: EntityDetails) -> str | None:
    """Why `details` cannot number `entity_id`'s documents, if they cannot: an entity
    other than the default one prints numbers of its own, never INV-/CN- numbers,
    which would read as the default entity's (and be found as them)."""
    if entity_id == DEFAULT_ENTITY:
        return None
    for field, number_format in (
        ("invoice_number_format", details.invoice_number_format),
        ("credit_note_number_format", details.credit_note_number_format),
    ):
        printed = format_number(number_format, 1, 2026)
        if printed.upper().startswith(("INV-", "CN-")):
            return (
                f"{field} {number_format!r}: INV- and CN- numbers are the default "
                f"entity's; give entity {entity_id!r} a format of its own (e.g. "
                f"'{entity_id.upper()}-{{year}}-{{seq:06}}')"
            )
    return None


def sequence_id(entity_id: str, document_type: DocumentType | str) -> UUID:
    """The gapless sequence numbering `entity_id`'s documents of that type: the
    default entity's are the historical ones, so INV-00000001 stays."""
    credit = document_type == DocumentType.CREDIT_NOTE
    if entity_id == DEFAULT_ENTITY:
        return CREDIT_NOTE_NUMBER_SEQUENCE_ID if credit else INVOICE_NUMBER_SEQUENCE_ID
    return entity_sequence_uuid(entity_id, "credit_note" if credit else "invoice")
