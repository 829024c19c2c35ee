"""The receivables read model: what each account owes and has paid, document by
document, its payments and collection attempts; balances, aging and payment
status are queried from it.

Built from the Receivables events only (`domain.receivables`): every amount here
is one an event recorded (allocations, credit changes), never recomputed, so the
view agrees with the aggregate by construction. Money is `numeric` in the tables
and `Decimal` in Python, printed at the currency's minor unit.

- `receivables`: one row per account: currency, credit balance, payment terms
  (NULL: the bill group's), auto-pay on or off with a masked hint of the token (the
  token itself never reaches the read side), suspended and why.
- `receivable_items`: one row per posted document: an invoice (amount, what is
  allocated to it, withdrawn or not, the highest dunning stage applied and the
  highest stage whose notice went out) or a credit note (recorded as the aggregate
  does: a negative amount, settled when posted, naming the invoice it corrects).
- `receivable_payments` and `receivable_allocations`: each payment (manual or
  collected), what went to credit, and the invoices it paid.
- `receivable_attempts`: each collection attempt and the gateway's answer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.receivables import events as receivables_events
from domain.receivables.allocation import Item
from domain.receivables.collection import GatewayOutcome
from domain.shared.model import DomainEvent
from domain.shared.money import round_to_currency
from infrastructure.topics import topic_of
from projections.view import View, ViewProjection

BUCKETS = ("current", "1-30", "31-60", "61-90", "over_90")
"""Aging buckets by days past the due date: not yet due, 1 to 30, ..., over 90."""

_BUCKET_FILTERS = (
    "days <= 0",
    "days BETWEEN 1 AND 30",
    "days BETWEEN 31 AND 60",
    "days BETWEEN 61 AND 90",
    "days > 90",
)

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"


def mask_token(token: str | None) -> str | None:
    """What the read side keeps of an auto-pay token: enough to tell two apart,
    never enough to charge (at most its first 4 and last 4 characters of 12+)."""
    if token is None:
        return None
    if len(token) >= 12:
        return f"{token[:4]}...{token[-4:]}"
    return "..." + token[-2:] if len(token) >= 6 else "..."


class ReceivablesView(View):
    name = "receivables"
    version = 1
    """1: accounts (currency, credit, terms, auto-pay hint, suspension), posted
    invoices and credit notes with allocations, withdrawals and dunning stages,
    payments with their allocations, collection attempts with their answers."""
    tables = (
        "receivables",
        "receivable_items",
        "receivable_payments",
        "receivable_allocations",
        "receivable_attempts",
    )

    def schema(self) -> list[Composed]:
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "receivables_id uuid PRIMARY KEY, account_id text UNIQUE NOT NULL, "
                "currency text NOT NULL, credit numeric NOT NULL DEFAULT 0, "
                "payment_terms_days int, autopay bool NOT NULL DEFAULT false, "
                "autopay_hint text, suspended bool NOT NULL DEFAULT false, "
                "suspended_reason text, opened_at timestamptz NOT NULL)"
            ).format(self.table("receivables")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "document_id uuid PRIMARY KEY, receivables_id uuid NOT NULL, "
                "account_id text NOT NULL, kind text NOT NULL, number text NOT NULL, "
                "issued_on date NOT NULL, due_on date NOT NULL, amount numeric NOT NULL, "
                "allocated numeric NOT NULL, withdrawn bool NOT NULL DEFAULT false, "
                "withdrawn_reason text, dunning_stage int NOT NULL DEFAULT 0, "
                "notice_stage int NOT NULL DEFAULT 0, corrects uuid, "
                "posted_at timestamptz NOT NULL)"
            ).format(self.table("receivable_items")),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id, due_on)").format(
                Identifier(f"receivable_items_{self.suffix}_account_idx"),
                self.table("receivable_items"),
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "account_id text NOT NULL, payment_id text NOT NULL, "
                "receivables_id uuid NOT NULL, amount numeric NOT NULL, "
                "received_on date NOT NULL, method text NOT NULL, reference text, "
                "credit numeric NOT NULL, recorded_at timestamptz NOT NULL, "
                "PRIMARY KEY (account_id, payment_id))"
            ).format(self.table("receivable_payments")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "account_id text NOT NULL, payment_id text NOT NULL, line_no int NOT NULL, "
                "document_id uuid NOT NULL, amount numeric NOT NULL, "
                "PRIMARY KEY (account_id, payment_id, line_no))"
            ).format(self.table("receivable_allocations")),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "attempt_id uuid PRIMARY KEY, receivables_id uuid NOT NULL, "
                "account_id text NOT NULL, run_id text NOT NULL, amount numeric NOT NULL, "
                "number int NOT NULL, collection_type text NOT NULL, outcome text, "
                "reference text, message text, retry_on date, "
                "attempted_at timestamptz NOT NULL, answered_at timestamptz)"
            ).format(self.table("receivable_attempts")),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        """A batch's changes gathered per row, then a statement per kind of change.

        Gathering is exact because the changes commute the way the aggregate applies
        them: allocations and credit changes are additions; a withdrawn invoice's
        allocations all move elsewhere (it is never allocated again, its open amount
        being 0), so withdrawing sets it to 0 after the additions; terms, auto-pay,
        suspension and answers keep their last value, dunning and notice stages their
        highest.
        """
        batch = _Changes(self._accounts_of(curs, events))
        for event in events:
            batch.add(event)
        t = self.table
        statements: list[tuple[Composed, list[tuple[Any, ...]]]] = [
            (
                SQL(
                    "INSERT INTO {} (receivables_id, account_id, currency, opened_at) "
                    "VALUES (%s, %s, %s, %s)"
                ).format(t("receivables")),
                batch.opened,
            ),
            (
                SQL(
                    "INSERT INTO {} (document_id, receivables_id, account_id, kind, number, "
                    "issued_on, due_on, amount, allocated, corrects, posted_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(t("receivable_items")),
                batch.posted,
            ),
            (
                SQL("UPDATE {} SET allocated = allocated + %s WHERE document_id = %s").format(
                    t("receivable_items")
                ),
                [(amount, document) for document, amount in batch.allocated.items()],
            ),
            (
                SQL(
                    "UPDATE {} SET withdrawn = true, allocated = 0, withdrawn_reason = %s "
                    "WHERE document_id = %s"
                ).format(t("receivable_items")),
                [(reason, document) for document, reason in batch.withdrawn.items()],
            ),
            (
                SQL(
                    "UPDATE {} SET dunning_stage = greatest(dunning_stage, %s) "
                    "WHERE document_id = %s"
                ).format(t("receivable_items")),
                [(stage, document) for document, stage in batch.stages.items()],
            ),
            (
                SQL(
                    "UPDATE {} SET notice_stage = greatest(notice_stage, %s) WHERE document_id = %s"
                ).format(t("receivable_items")),
                [(stage, document) for document, stage in batch.notices.items()],
            ),
            (
                SQL("UPDATE {} SET credit = credit + %s WHERE receivables_id = %s").format(
                    t("receivables")
                ),
                [(amount, rid) for rid, amount in batch.credit.items()],
            ),
            (
                SQL("UPDATE {} SET payment_terms_days = %s WHERE receivables_id = %s").format(
                    t("receivables")
                ),
                [(days, rid) for rid, days in batch.terms.items()],
            ),
            (
                SQL(
                    "UPDATE {} SET autopay = %s, autopay_hint = %s WHERE receivables_id = %s"
                ).format(t("receivables")),
                [(hint is not None, hint, rid) for rid, hint in batch.autopay.items()],
            ),
            (
                SQL(
                    "UPDATE {} SET suspended = %s, suspended_reason = %s WHERE receivables_id = %s"
                ).format(t("receivables")),
                [(on, reason, rid) for rid, (on, reason) in batch.suspended.items()],
            ),
            (
                SQL(
                    "INSERT INTO {} (account_id, payment_id, receivables_id, amount, "
                    "received_on, method, reference, credit, recorded_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(t("receivable_payments")),
                batch.payments,
            ),
            (
                SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s)").format(
                    t("receivable_allocations")
                ),
                batch.payment_allocations,
            ),
            (
                SQL(
                    "INSERT INTO {} (attempt_id, receivables_id, account_id, run_id, amount, "
                    "number, collection_type, attempted_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(t("receivable_attempts")),
                batch.attempts,
            ),
            (
                SQL(
                    "UPDATE {} SET outcome = %s, reference = %s, message = %s, retry_on = %s, "
                    "answered_at = %s WHERE attempt_id = %s"
                ).format(t("receivable_attempts")),
                [(*answer, attempt) for attempt, answer in batch.answers.items()],
            ),
        ]
        for statement, rows in statements:
            if rows:
                curs.executemany(statement, rows)

    def _accounts_of(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> dict[UUID, str]:
        """The account id of every receivables the batch touches (the events after
        the first carry only the aggregate's id)."""
        accounts = {
            e.originator_id: e.account_id
            for e in events
            if isinstance(e, receivables_events.ReceivablesOpened)
        }
        unknown = list({e.originator_id for e in events} - set(accounts))
        if unknown:
            curs.execute(
                SQL("SELECT receivables_id, account_id FROM {} WHERE receivables_id = ANY(%s)")
                .format(self.table("receivables")),
                (unknown,),
            )  # fmt: skip
            accounts.update({row["receivables_id"]: row["account_id"] for row in curs.fetchall()})
        missing = set(unknown) - set(accounts)
        if missing:
            raise LookupError(f"receivables view has no receivables {sorted(map(str, missing))}")
        return accounts

    # Queries ------------------------------------------------------------------

    def account(self, account_id: str) -> AccountRow | None:
        with self.datastore.transaction(commit=False) as curs:
            return self._account(curs, account_id)

    def _account(self, curs: Cursor[DictRow], account_id: str) -> AccountRow | None:
        curs.execute(
            SQL("SELECT * FROM {} WHERE account_id = %s").format(self.table("receivables")),
            (account_id,),
        )
        row = curs.fetchone()
        return None if row is None else AccountRow.from_row(row)

    def items(self, account_id: str, open_only: bool = False) -> list[ItemRow]:
        """The account's posted documents, oldest due first (the allocation order)."""
        with self.datastore.transaction(commit=False) as curs:
            return self._items(curs, account_id, open_only)

    def _items(self, curs: Cursor[DictRow], account_id: str, open_only: bool) -> list[ItemRow]:
        where = SQL(" AND NOT i.withdrawn AND i.amount - i.allocated > 0") if open_only else SQL("")
        curs.execute(
            SQL(
                "SELECT i.*, r.currency FROM {} i JOIN {} r USING (receivables_id) "
                "WHERE i.account_id = %s{} ORDER BY i.due_on, i.issued_on, i.number"
            ).format(self.table("receivable_items"), self.table("receivables"), where),
            (account_id,),
        )
        return [ItemRow.from_row(row) for row in curs.fetchall()]

    def balance(self, account_id: str, as_of: date) -> AccountBalance | None:
        """The account's balance (open amounts minus credit), its open items as of
        `as_of` and their aging, read in one transaction (so they agree even while a
        writer applies events); None when nothing was ever posted or paid."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            account = self._account(curs, account_id)
            if account is None:
                return None
            items = self._items(curs, account_id, open_only=True)
            aging = self._aging(curs, as_of, account_id)
        return AccountBalance(account, items, aging.rows[0], as_of)

    def aging(self, as_of: date, account_id: str | None = None) -> AgingReport:
        """What is open, per account, by days past due as of `as_of` (current: not
        yet due), with totals per currency. The open amounts are those of now (the
        latest events), aged on `as_of`. Without `account_id`: every account with
        something open or in credit."""
        with self.datastore.transaction(commit=False) as curs:
            return self._aging(curs, as_of, account_id)

    def _aging(self, curs: Cursor[DictRow], as_of: date, account_id: str | None) -> AgingReport:
        buckets = SQL(", ").join(
            SQL("coalesce(sum(i.open) FILTER (WHERE {}), 0) AS {}").format(
                SQL(condition), Identifier(name)
            )
            for name, condition in zip(BUCKETS, _BUCKET_FILTERS, strict=True)
        )
        where = SQL("WHERE r.account_id = %s") if account_id is not None else SQL("")
        having = (
            SQL("")
            if account_id is not None
            else SQL("HAVING r.credit <> 0 OR coalesce(sum(i.open), 0) <> 0")
        )
        statement = SQL(
            "SELECT r.account_id, r.currency, r.credit, {}, "
            "coalesce(sum(i.open), 0) AS open_total, count(i.open) AS open_items "
            "FROM {} r LEFT JOIN (SELECT account_id, amount - allocated AS open, "
            "%s::date - due_on AS days FROM {} "
            "WHERE NOT withdrawn AND amount - allocated > 0) i USING (account_id) "
            "{} GROUP BY r.account_id, r.currency, r.credit {} ORDER BY r.account_id"
        ).format(
            buckets,
            self.table("receivables"),
            self.table("receivable_items"),
            where,
            having,
        )
        params: list[Any] = [as_of] + ([account_id] if account_id is not None else [])
        curs.execute(statement, params)
        return AgingReport(as_of, [AgingRow.from_row(row) for row in curs.fetchall()])

    def payment_status(self, invoice_ids: Iterable[UUID]) -> dict[UUID, ItemRow]:
        """The posted invoices among `invoice_ids` (an invoice not posted, open or
        closed before receivables existed, is absent); `ItemRow.status(as_of)`."""
        ids = list(invoice_ids)
        if not ids:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT i.*, r.currency FROM {} i JOIN {} r USING (receivables_id) "
                    "WHERE i.document_id = ANY(%b)"  # ids in binary: 4x cheaper to send
                ).format(self.table("receivable_items"), self.table("receivables")),
                (ids,),
            )
            return {row["document_id"]: ItemRow.from_row(row) for row in curs.fetchall()}

    def payments(self, account_id: str | None = None) -> list[PaymentRow]:
        """Payments, newest received first, each with the invoices it paid."""
        where = SQL("WHERE p.account_id = %s") if account_id is not None else SQL("")
        params = (account_id,) if account_id is not None else ()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT p.*, r.currency FROM {} p JOIN {} r USING (receivables_id) {} "
                    "ORDER BY p.received_on DESC, p.recorded_at DESC, p.account_id, p.payment_id"
                ).format(self.table("receivable_payments"), self.table("receivables"), where),
                params,
            )
            payments = curs.fetchall()
            curs.execute(
                SQL(
                    "SELECT a.account_id, a.payment_id, a.document_id, a.amount, i.number "
                    "FROM {} a JOIN {} i USING (document_id) {} "
                    "ORDER BY a.account_id, a.payment_id, a.line_no"
                ).format(
                    self.table("receivable_allocations"),
                    self.table("receivable_items"),
                    SQL("WHERE a.account_id = %s") if account_id is not None else SQL(""),
                ),
                params,
            )
            allocations: dict[tuple[str, str], list[PaidDocument]] = {}
            for row in curs.fetchall():
                allocations.setdefault((row["account_id"], row["payment_id"]), []).append(
                    PaidDocument(row["document_id"], row["number"], row["amount"])
                )
        return [
            PaymentRow.from_row(row, allocations.get((row["account_id"], row["payment_id"]), []))
            for row in payments
        ]

    def pending_collections(self) -> list[str]:
        """Accounts with a collection attempt whose outcome is not known (never
        answered, or timed out): what `billrun payment reconcile` looks at."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT DISTINCT account_id FROM {} WHERE outcome IS NULL OR outcome = %s "
                    "ORDER BY account_id"
                ).format(self.table("receivable_attempts")),
                (GatewayOutcome.TIMEOUT.value,),
            )
            return [row["account_id"] for row in curs.fetchall()]


class _Changes:
    """What a batch of events changes, gathered per row (see `ReceivablesView.write`)."""

    def __init__(self, accounts: dict[UUID, str]) -> None:
        self.accounts = accounts
        self.opened: list[tuple[Any, ...]] = []
        self.posted: list[tuple[Any, ...]] = []
        self.allocated: dict[UUID, Decimal] = {}
        self.withdrawn: dict[UUID, str] = {}
        self.stages: dict[UUID, int] = {}
        self.notices: dict[UUID, int] = {}
        self.credit: dict[UUID, Decimal] = {}
        self.terms: dict[UUID, int | None] = {}
        self.autopay: dict[UUID, str | None] = {}
        self.suspended: dict[UUID, tuple[bool, str | None]] = {}
        self.payments: list[tuple[Any, ...]] = []
        self.payment_allocations: list[tuple[Any, ...]] = []
        self.attempts: list[tuple[Any, ...]] = []
        self.answers: dict[UUID, tuple[Any, ...]] = {}

    def add(self, event: DomainEvent) -> None:
        rid = event.originator_id
        account = self.accounts[rid]
        if isinstance(
            event,
            receivables_events.InvoicePosted
            | receivables_events.InvoiceWithdrawn
            | receivables_events.PaymentReceived
            | receivables_events.CreditNotePosted,
        ):
            self._add_money(event, rid, account)
        elif isinstance(
            event, receivables_events.CollectionAttempted | receivables_events.CollectionAnswered
        ):
            self._add_collection(event, rid, account)
        elif isinstance(event, receivables_events.ReceivablesOpened):
            self.opened.append((rid, event.account_id, event.currency, event.timestamp))
        elif isinstance(event, receivables_events.PaymentTermsSet):
            self.terms[rid] = event.days
        elif isinstance(event, receivables_events.AutoPaySet):
            self.autopay[rid] = mask_token(event.token)
        elif isinstance(event, receivables_events.DunningApplied):
            self.stages[event.invoice_id] = max(self.stages.get(event.invoice_id, 0), event.stage)
        elif isinstance(event, receivables_events.DunningNoticeSent):
            self.notices[event.invoice_id] = max(self.notices.get(event.invoice_id, 0), event.stage)
        elif isinstance(
            event,
            receivables_events.AccountSuspended | receivables_events.AccountSuspendedByOperator,
        ):
            self.suspended[rid] = (True, event.reason)
        elif isinstance(event, receivables_events.AccountReinstated):
            self.suspended[rid] = (False, None)

    def _add_money(
        self,
        event: receivables_events.InvoicePosted
        | receivables_events.InvoiceWithdrawn
        | receivables_events.PaymentReceived
        | receivables_events.CreditNotePosted,
        rid: UUID,
        account: str,
    ) -> None:
        """Documents posted or withdrawn, payments: allocations and credit changes."""
        if isinstance(event, receivables_events.InvoicePosted):
            # A negative invoice is settled by being posted (the aggregate's rule).
            allocated = min(event.amount, Decimal(0))
            self.posted.append(
                (event.invoice_id, rid, account, INVOICE, event.number, event.issued_on,
                 event.due_on, event.amount, allocated, None, event.timestamp)
            )  # fmt: skip
            credit = event.credit_change
        elif isinstance(event, receivables_events.InvoiceWithdrawn):
            self.withdrawn[event.invoice_id] = event.reason
            credit = event.credit
        elif isinstance(event, receivables_events.PaymentReceived):
            self.payments.append(
                (account, event.payment_id, rid, event.amount, event.received_on, event.method,
                 event.reference, event.credit, event.timestamp)
            )  # fmt: skip
            self.payment_allocations.extend(
                (account, event.payment_id, n, a.document_id, a.amount)
                for n, a in enumerate(event.allocations, start=1)
            )
            credit = event.credit
        else:
            # Recorded as the aggregate records it: negative, settled as it is posted.
            self.posted.append(
                (event.credit_note_id, rid, account, CREDIT_NOTE, event.number, event.issued_on,
                 event.issued_on, -event.amount, -event.amount, event.corrects, event.timestamp)
            )  # fmt: skip
            credit = event.credit
        for allocation in event.allocations:
            document = allocation.document_id
            self.allocated[document] = self.allocated.get(document, Decimal(0)) + allocation.amount
        if credit:
            self.credit[rid] = self.credit.get(rid, Decimal(0)) + credit

    def _add_collection(
        self,
        event: receivables_events.CollectionAttempted | receivables_events.CollectionAnswered,
        rid: UUID,
        account: str,
    ) -> None:
        if isinstance(event, receivables_events.CollectionAttempted):
            self.attempts.append(
                (event.attempt_id, rid, account, event.run_id, event.amount, event.number,
                 event.collection_type.value, event.timestamp)
            )  # fmt: skip
        else:
            self.answers[event.attempt_id] = (
                event.outcome.value, event.reference, event.message, event.retry_on,
                event.timestamp,
            )  # fmt: skip


# Rows -----------------------------------------------------------------------


def _money(amount: Decimal, currency: str) -> Decimal:
    """An amount at its currency's minor unit (exact: every stored amount already is)."""
    return _rounded(Decimal(amount), currency)


@functools.lru_cache(maxsize=4096)
def _rounded(amount: Decimal, currency: str) -> Decimal:
    """`round_to_currency`, remembered: its result depends only on the amount's value
    and the currency (5 and 5.00 are equal keys and both give 5.00), and a report
    rounds the same few amounts over and over (the aging of 4,900 accounts makes
    39,204 calls, a fifth of `billrun ar aging`; docs/benchmarks.md, CLI reads)."""
    return round_to_currency(amount, currency)


@dataclass(frozen=True)
class AccountRow:
    account: str
    currency: str
    credit: Decimal
    payment_terms_days: int | None
    """The account's own net days; None: its bill group's terms."""
    autopay: bool
    autopay_hint: str | None
    suspended: bool
    suspended_reason: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccountRow:
        return cls(
            account=row["account_id"],
            currency=row["currency"],
            credit=_money(row["credit"], row["currency"]),
            payment_terms_days=row["payment_terms_days"],
            autopay=row["autopay"],
            autopay_hint=row["autopay_hint"],
            suspended=row["suspended"],
            suspended_reason=row["suspended_reason"],
        )


@dataclass(frozen=True)
class ItemRow:
    document_id: UUID
    account: str
    currency: str
    kind: str
    number: str
    issued_on: date
    due_on: date
    amount: Decimal
    allocated: Decimal
    """Paid on it so far: payments, credit applied, credit notes."""
    withdrawn: bool
    withdrawn_reason: str | None
    dunning_stage: int
    corrects: UUID | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ItemRow:
        currency = row["currency"]
        return cls(
            document_id=row["document_id"],
            account=row["account_id"],
            currency=currency,
            kind=row["kind"],
            number=row["number"],
            issued_on=row["issued_on"],
            due_on=row["due_on"],
            amount=_money(row["amount"], currency),
            allocated=_money(row["allocated"], currency),
            withdrawn=row["withdrawn"],
            withdrawn_reason=row["withdrawn_reason"],
            dunning_stage=row["dunning_stage"],
            corrects=row["corrects"],
        )

    def _item(self) -> Item:
        """The domain's own item, so statuses follow the aggregate's rules."""
        return Item(
            self.document_id, self.number, self.issued_on, self.due_on, self.amount,
            self.allocated, self.withdrawn, self.dunning_stage,
        )  # fmt: skip

    @property
    def open_amount(self) -> Decimal:
        return _money(self._item().open_amount, self.currency)

    def status(self, as_of: date) -> str:
        """paid, partially_paid, unpaid, overdue (open after its due date) or withdrawn."""
        return self._item().status(as_of).value

    def days_overdue(self, as_of: date) -> int:
        return 0 if self.open_amount <= 0 else self._item().days_overdue(as_of)

    def as_json(self, as_of: date) -> dict[str, Any]:
        return {
            "id": str(self.document_id),
            "kind": self.kind,
            "number": self.number,
            "account": self.account,
            "currency": self.currency,
            "issued_on": self.issued_on.isoformat(),
            "due_on": self.due_on.isoformat(),
            "amount": str(self.amount),
            "paid": str(self.allocated),
            "open": str(self.open_amount),
            "status": self.status(as_of),
            "days_overdue": self.days_overdue(as_of),
            "dunning_stage": self.dunning_stage,
            "withdrawn_reason": self.withdrawn_reason,
        }


@dataclass(frozen=True)
class AgingRow:
    account: str | None
    """None: a currency's totals."""
    currency: str
    buckets: dict[str, Decimal]
    """Open amounts per bucket of `BUCKETS`."""
    open_total: Decimal
    credit: Decimal
    open_items: int

    @property
    def balance(self) -> Decimal:
        """What is owed: the open amounts minus the credit balance (negative: in credit)."""
        return _money(self.open_total - self.credit, self.currency)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AgingRow:
        currency = row["currency"]
        return cls(
            account=row["account_id"],
            currency=currency,
            buckets={name: _money(row[name], currency) for name in BUCKETS},
            open_total=_money(row["open_total"], currency),
            credit=_money(row["credit"], currency),
            open_items=row["open_items"],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            **({"account": self.account} if self.account is not None else {}),
            "currency": self.currency,
            "buckets": {name: str(amount) for name, amount in self.buckets.items()},
            "open": str(self.open_total),
            "credit": str(self.credit),
            "balance": str(self.balance),
            "open_items": self.open_items,
        }


@dataclass(frozen=True)
class AgingReport:
    as_of: date
    rows: list[AgingRow]

    @property
    def totals(self) -> list[AgingRow]:
        """One row per currency, summing its accounts."""
        totals: dict[str, AgingRow] = {}
        for row in self.rows:
            found = totals.get(row.currency)
            if found is None:
                totals[row.currency] = AgingRow(
                    None, row.currency, dict(row.buckets), row.open_total, row.credit,
                    row.open_items,
                )  # fmt: skip
                continue
            totals[row.currency] = AgingRow(
                None,
                row.currency,
                {name: found.buckets[name] + row.buckets[name] for name in BUCKETS},
                found.open_total + row.open_total,
                found.credit + row.credit,
                found.open_items + row.open_items,
            )
        return [totals[currency] for currency in sorted(totals)]

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "buckets": list(BUCKETS),
            "accounts": [row.as_json() for row in self.rows],
            "totals": [row.as_json() for row in self.totals],
        }


@dataclass(frozen=True)
class AccountBalance:
    account: AccountRow
    open_items: list[ItemRow]
    aging: AgingRow
    as_of: date

    @property
    def balance(self) -> Decimal:
        return self.aging.balance

    def as_json(self) -> dict[str, Any]:
        account = self.account
        return {
            "account": account.account,
            "currency": account.currency,
            "as_of": self.as_of.isoformat(),
            "balance": str(self.balance),
            "open": str(self.aging.open_total),
            "credit": str(account.credit),
            "overdue": str(
                _money(
                    sum(
                        (i.open_amount for i in self.open_items if i.due_on < self.as_of),
                        Decimal(0),
                    ),
                    account.currency,
                )
            ),
            "suspended": account.suspended,
            "suspended_reason": account.suspended_reason,
            "payment_terms_days": account.payment_terms_days,
            "autopay": account.autopay,
            "autopay_token": account.autopay_hint,
            "aging": {name: str(amount) for name, amount in self.aging.buckets.items()},
            "open_items": [item.as_json(self.as_of) for item in self.open_items],
        }


@dataclass(frozen=True)
class PaidDocument:
    document_id: UUID
    number: str
    amount: Decimal


@dataclass(frozen=True)
class PaymentRow:
    account: str
    payment_id: str
    currency: str
    amount: Decimal
    received_on: date
    method: str
    reference: str | None
    credit: Decimal
    """What was left after the open invoices: added to the credit balance."""
    recorded_at: datetime
    allocations: list[PaidDocument] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any], allocations: list[PaidDocument]) -> PaymentRow:
        currency = row["currency"]
        return cls(
            account=row["account_id"],
            payment_id=row["payment_id"],
            currency=currency,
            amount=_money(row["amount"], currency),
            received_on=row["received_on"],
            method=row["method"],
            reference=row["reference"],
            credit=_money(row["credit"], currency),
            recorded_at=row["recorded_at"],
            allocations=[
                PaidDocument(a.document_id, a.number, _money(a.amount, currency))
                for a in allocations
            ],
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "payment_id": self.payment_id,
            "currency": self.currency,
            "amount": str(self.amount),
            "received_on": self.received_on.isoformat(),
            "method": self.method,
            "reference": self.reference,
            "allocations": [
                {"invoice_id": str(a.document_id), "number": a.number, "amount": str(a.amount)}
                for a in self.allocations
            ],
            "credit": str(self.credit),
            "recorded_at": self.recorded_at.isoformat(),
        }


_EVENTS: list[type[DomainEvent]] = [
    receivables_events.ReceivablesOpened,
    receivables_events.PaymentTermsSet,
    receivables_events.AutoPaySet,
    receivables_events.InvoicePosted,
    receivables_events.InvoiceWithdrawn,
    receivables_events.PaymentReceived,
    receivables_events.CreditNotePosted,
    receivables_events.DunningApplied,
    receivables_events.AccountSuspended,
    receivables_events.AccountSuspendedByOperator,
    receivables_events.AccountReinstated,
    receivables_events.DunningNoticeSent,
    receivables_events.CollectionAttempted,
    receivables_events.CollectionAnswered,
]


class ReceivablesProjection(ViewProjection):
    name = ReceivablesView.versioned_name()
    topics = tuple(topic_of(e) for e in _EVENTS)
