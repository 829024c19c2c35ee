"""Invoicer families: an account billed onto another account's invoices.

Both sides change in one transaction: the member names its invoicer
(`InvoicerChanged`) and the invoicer lists its members (`InvoicerMemberAdded`
/ `InvoicerMemberRemoved`), so a bill run finds a family by loading the
invoicer alone. One level only: an invoicer is never itself a member.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from application.shared.errors import ApplicationError
from domain.billing.account import Account


class InvalidInvoicer(ApplicationError):
    pass


class AccountBook(Protocol):
    """What assigning an invoicer needs of the application (`Billing` is one).

    Declared here rather than importing `Billing`: billing.py applies families on
    import (`change_invoicer`), and a module it imports must not import it back.
    """

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def get_account(self, account_id: str) -> Account: ...

    def save(self, *objs: Account) -> Sequence[object]: ...


def assign_invoicer(billing: AccountBook, member_id: str, invoicer_id: str | None) -> int:
    """Bill `member_id` onto `invoicer_id`'s invoices (None: onto its own again).

    Returns the events saved: 0 when it already is. Applies from the next bill run on.
    """
    member = billing.get_account(member_id)
    changed = change_invoicer(member, invoicer_id, billing.get_account, billing.clock())
    return len(billing.save(*changed)) if changed else 0


def change_invoicer(
    member: Account,
    invoicer_id: str | None,
    account_of: Callable[[str], Account],
    at: datetime,
) -> list[Account]:
    """The member, its new and its old invoicer, changed in memory (not saved):
    none when the member already has that invoicer. `account_of` finds an account
    by id (the store, or an import's accounts not saved yet)."""
    if member.invoicer == invoicer_id:
        return []
    member_id = member.account_id
    changed: list[Account] = [member]
    if invoicer_id is not None:
        invoicer = account_of(invoicer_id)
        if invoicer.invoicer is not None:
            raise InvalidInvoicer(
                f"account {invoicer_id} is itself billed onto {invoicer.invoicer}'s invoices; "
                f"name {invoicer.invoicer} as the invoicer"
            )
        invoicer.add_member(member_id, at)
        changed.append(invoicer)
    if member.invoicer is not None:
        previous = account_of(member.invoicer)
        previous.remove_member(member_id, at)
        changed.append(previous)
    member.set_invoicer(invoicer_id, at)
    return changed
