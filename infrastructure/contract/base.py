"""What every public event shares: the pydantic base its schema comes from, the
decimal-as-string type, and `PublicForm`, the mapping of one stored event to it.

A public event is a contract with other teams, separate from the stored domain
event it is made from: the stored event may change shape (upcast on read), the
public one only grows optional fields within a version. Anything else (a field
removed, renamed or retyped) is a new version, `ce-type` ending `.v2`, published
beside `.v1` for the deprecation period documented in docs/subscribing.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
"""Decimals travel as plain-notation strings (no exponent, no float rounding)."""

Amount = Annotated[str, Field(pattern=DECIMAL_PATTERN, examples=["119.00"])]
"""A decimal amount in the `currency` beside it, in that currency's minor units."""
Rate = Annotated[str, Field(pattern=DECIMAL_PATTERN, examples=["1.0825"])]
"""A decimal that is not money (an exchange rate, a tax rate in percent)."""
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
"""ISO 4217 code."""

Facts = dict[str, Any]
"""What the relay knows about one aggregate from its earlier events (`Facts` in
`infrastructure.contract.facts`): account id, currency, run id, number..."""


class PublicEvent(BaseModel):
    """Base of every public event body. Subscribers must ignore fields they do not
    know (additional properties are allowed: adding an optional field keeps the
    version)."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    ce_type: ClassVar[str]
    """The CloudEvents type, e.g. `billrun.invoice.closed.v1`."""


@dataclass(frozen=True, slots=True)
class PublicForm:
    """How one stored event type becomes its public event."""

    stored: str
    """The stored event's name (the part of its topic after `:`)."""
    model: type[PublicEvent]
    body: Callable[[dict[str, Any], Facts], dict[str, Any]]
    """The public body from the stored JSON and the aggregate's facts."""
    subject: str
    """The body field that is the CloudEvents `ce-subject` (what the event is about)."""

    @property
    def ce_type(self) -> str:
        return self.model.ce_type


def plain(value: str | None) -> str | None:
    """A stored decimal string in plain notation (pydantic writes `str(Decimal)`,
    which uses an exponent for values such as 1E+2)."""
    if value is None or ("E" not in value and "e" not in value):
        return value
    return format(Decimal(value), "f")


def document_number(number: int | None, document_type: str) -> str | None:
    """The number as printed on the document (`domain.invoice.format_document_number`)."""
    if number is None:
        return None
    return f"{'CN' if document_type == 'credit_note' else 'INV'}-{number:08d}"
