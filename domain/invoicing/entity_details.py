"""What an issuing entity is: the legal entity an invoice is issued by, its
bank accounts and the format of its document numbers (value objects only, so
the events module can carry them)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from domain.shared.errors import DomainError
from domain.shared.model import ValueObject

DEFAULT_ENTITY = "default"
"""The entity the BILLRUN_SELLER_* settings describe; bill groups without an
entity are billed by it, with the historical numbers (INV-00000001, CN-00000001)."""

DEFAULT_INVOICE_FORMAT = "INV-{seq:08}"
DEFAULT_CREDIT_NOTE_FORMAT = "CN-{seq:08}"

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SEQ = re.compile(r"seq(?::0([1-9]|1[0-2]))?")


class NumberFormatError(DomainError):
    pass


def check_number_format(number_format: str) -> str:
    """A number format is literal text with `{year}` (the document's year) and
    exactly one `{seq}` or `{seq:0N}` (the sequence number, zero-padded to N
    digits); anything else in braces is refused, so a typo never prints."""
    rest = _PLACEHOLDER.sub("", number_format)
    if len(number_format) > 40 or "{" in rest or "}" in rest:
        raise NumberFormatError(
            f"number format {number_format!r}: at most 40 characters, balanced braces"
        )
    names = _PLACEHOLDER.findall(number_format)
    seqs = [name for name in names if _SEQ.fullmatch(name)]
    unknown = [name for name in names if name != "year" and not _SEQ.fullmatch(name)]
    if unknown:
        raise NumberFormatError(
            f"number format {number_format!r}: unknown placeholder {{{unknown[0]}}} "
            "(known: {year}, {seq}, {seq:0N} with N from 1 to 12)"
        )
    if len(seqs) != 1:
        raise NumberFormatError(
            f"number format {number_format!r}: needs exactly one {{seq}} or {{seq:0N}}"
        )
    return number_format


def format_number(number_format: str, seq: int, year: int) -> str:
    """`BE-{year}-{seq:06}` with 1 in 2026 gives `BE-2026-000001`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "year":
            return f"{year:04d}"
        width = _SEQ.fullmatch(name)
        assert width is not None  # checked by check_number_format
        return f"{seq:0{width.group(1) or 1}d}"

    return _PLACEHOLDER.sub(replace, check_number_format(number_format))


class BankAccount(ValueObject):
    """Where invoices in `currency` are paid: SEPA credit transfer (UNCL 4461 `58`)
    only for EUR, a plain credit transfer (`30`) otherwise."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    account_id: str = Field(min_length=1)
    bic: str | None = None

    @property
    def payment_means(self) -> str:
        return "58" if self.currency == "EUR" else "30"


class EntityDetails(ValueObject):
    legal_name: str = Field(min_length=1)
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country_code: str = Field(pattern=r"^[A-Z]{2}$")
    vat_id: str | None = None
    company_id: str | None = None
    email: str | None = None
    endpoint_scheme: str | None = None
    """The electronic address (BT-34): Peppol EAS scheme (0208, 9925, 0009, EM...)."""
    endpoint_id: str | None = None
    peppol: bool = False
    bank_accounts: tuple[BankAccount, ...] = Field(min_length=1)
    """Where its invoices are paid, one account per currency; the first is its main
    account, for currencies without one of their own."""
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    invoice_number_format: str = DEFAULT_INVOICE_FORMAT
    credit_note_number_format: str = DEFAULT_CREDIT_NOTE_FORMAT

    @field_validator("invoice_number_format", "credit_note_number_format")
    @classmethod
    def _format(cls, value: str) -> str:
        try:
            return check_number_format(value)
        except NumberFormatError as error:
            raise ValueError(str(error)) from None  # pydantic reports it with the field

    @model_validator(mode="after")
    def _consistent(self) -> EntityDetails:
        if (self.endpoint_scheme is None) != (self.endpoint_id is None):
            raise ValueError("endpoint_scheme and endpoint_id go together")
        if self.peppol and self.endpoint_id is None:
            raise ValueError("a Peppol entity needs an electronic address (endpoint)")
        currencies = [account.currency for account in self.bank_accounts]
        if len(set(currencies)) != len(currencies):
            raise ValueError("one bank account per currency")
        return self

    def bank_account(self, currency: str) -> BankAccount | None:
        for account in self.bank_accounts:
            if account.currency == currency:
                return account
        return None
