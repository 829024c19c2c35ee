"""Domain exceptions: every refusal the domain can make, in billing terms."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a command was refused because it would break a billing rule."""


class UnknownCurrency(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown ISO 4217 currency: {code!r}")
        self.code = code


class CurrencyMismatch(DomainError):
    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"cannot combine amounts in {left} and {right}")


class InvalidPeriod(DomainError):
    pass


class NotABillDate(DomainError):
    pass


class AccountError(DomainError):
    pass


class BillRunError(DomainError):
    pass


class RunAlreadyScheduled(BillRunError):
    pass


class RunNotRunnable(BillRunError):
    pass


class StaleCheckpoint(BillRunError):
    """A batch was computed from a run state that another process has moved past."""


class InvoiceError(DomainError):
    pass
