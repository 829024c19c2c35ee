"""Errors the application reports to its callers, in billing language."""

from __future__ import annotations

from dataclasses import dataclass


class ApplicationError(Exception):
    """A request was refused; nothing was written."""


class AccountNotFound(ApplicationError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"no account {account_id!r}")
        self.account_id = account_id


class RunNotFound(ApplicationError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no bill run {run_id!r}; schedule it first with 'billrun run schedule'")
        self.run_id = run_id


class InvoiceNotFound(ApplicationError):
    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"no invoice {invoice_id!r}")
        self.invoice_id = invoice_id


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, and where: `path: message`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidInput(ApplicationError):
    """Input refused whole, with every problem found (not just the first)."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        listed = "\n".join(f"  {source}: {problem}" for problem in problems)
        super().__init__(f"{source}: refused, {len(problems)} {noun}, nothing written:\n{listed}")

    def within(self, record: str) -> InvalidInput:
        """The same problems located inside `record` (`accounts[0]`): a request that
        sends the record alone names `name`, not `accounts[0].name`."""
        problems = [
            Problem(p.path.removeprefix(record).removeprefix("."), p.message) for p in self.problems
        ]
        return InvalidInput(self.source, problems)
