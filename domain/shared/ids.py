"""Deterministic identities: the same natural key is always the same id.

This is what makes re-running, racing and resuming safe: a second attempt to
create the invoice of (run, account) or to bill (account, package, period)
produces the very same id, and the event store's optimistic concurrency refuses it.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID, uuid5

NAMESPACE = UUID("6f1c4a52-2f0e-5d6b-9a64-3b0b1c1e7a10")


def account_uuid(account_id: str) -> UUID:
    return uuid5(NAMESPACE, f"account:{account_id}")


def run_uuid(run_id: str) -> UUID:
    return uuid5(NAMESPACE, f"bill-run:{run_id}")


def invoice_uuid(run_id: str, account_id: str) -> UUID:
    return uuid5(NAMESPACE, f"invoice:{run_id}:{account_id}")


def package_line_uuid(account_id: str, package_id: str, period_start: date) -> UUID:
    return uuid5(NAMESPACE, f"package-line:{account_id}:{package_id}:{period_start.isoformat()}")


INVOICE_NUMBER_SEQUENCE_ID = uuid5(NAMESPACE, "invoice-number-sequence")
CREDIT_NOTE_NUMBER_SEQUENCE_ID = uuid5(NAMESPACE, "credit-note-number-sequence")
"""Credit notes are numbered by a sequence of their own (CN-00000001, ...)."""


def credit_note_uuid(invoice_id: UUID, key: str) -> UUID:
    """The credit note of `invoice_id` named by `key` (the operator's, or derived
    from its terms): issuing it again finds the same credit note."""
    return uuid5(NAMESPACE, f"credit-note:{invoice_id}:{key}")


def entity_uuid(entity_id: str) -> UUID:
    return uuid5(NAMESPACE, f"issuing-entity:{entity_id}")


def entity_sequence_uuid(entity_id: str, document_type: str) -> UUID:
    """An issuing entity's own number sequence for one document type (the default
    entity keeps INVOICE_NUMBER_SEQUENCE_ID and CREDIT_NOTE_NUMBER_SEQUENCE_ID)."""
    return uuid5(NAMESPACE, f"entity-sequence:{entity_id}:{document_type}")


def bill_group_uuid(group_id: str) -> UUID:
    return uuid5(NAMESPACE, f"bill-group:{group_id}")


def usage_line_uuid(
    account_id: str, run_id: str, package_id: str, description: str, unit_price: object
) -> UUID:
    """The line summing one package's usage at one price and description, in one run."""
    key = f"usage-line:{account_id}:{run_id}:{package_id}:{unit_price}:{description}"
    return uuid5(NAMESPACE, key)


def charge_line_uuid(account_id: str, charge_id: str) -> UUID:
    return uuid5(NAMESPACE, f"charge-line:{account_id}:{charge_id}")


def contract_line_uuid(account_id: str, contract_id: str, reason: str) -> UUID:
    """A contract's penalty line of one kind: at most one per (contract, reason)."""
    return uuid5(NAMESPACE, f"contract-line:{account_id}:{contract_id}:{reason}")


def schedule_uuid(name: str) -> UUID:
    """A schedule, by its name (a name is never reused: its runs are named after it)."""
    return uuid5(NAMESPACE, f"schedule:{name}")
