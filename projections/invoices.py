"""The invoices read model: invoices with their lines, searchable by run,
account and status."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from domain.invoice import InvoiceClosed, InvoiceLineAdded, InvoiceOpened, format_invoice_number
from domain.model import DomainEvent
from projections.view import View, ViewProjection


class InvoicesView(View):
    name = "invoices"
    version = 1
    tables = ("invoices", "invoice_lines")

    def schema(self) -> list[Composed]:
        invoices, lines = self.table("invoices"), self.table("invoice_lines")
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "id uuid PRIMARY KEY, run_id text NOT NULL, account_id text NOT NULL, "
                "currency text NOT NULL, status text NOT NULL, number bigint UNIQUE, "
                "posting_date date NOT NULL, subtotal numeric NOT NULL DEFAULT 0, "
                "tax numeric NOT NULL DEFAULT 0, total numeric NOT NULL DEFAULT 0, "
                "line_count int NOT NULL DEFAULT 0, opened_at timestamptz NOT NULL, "
                "closed_at timestamptz)"
            ).format(invoices),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (run_id, number)").format(
                Identifier(f"invoices_{self.suffix}_run_idx"), invoices
            ),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id, number)").format(
                Identifier(f"invoices_{self.suffix}_account_idx"), invoices
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "invoice_id uuid NOT NULL, line_no int NOT NULL, line_id uuid NOT NULL, "
                "account_id text NOT NULL, source text NOT NULL, description text NOT NULL, "
                "service_period_start date NOT NULL, service_period_end date NOT NULL, "
                "quantity numeric NOT NULL, unit_amount numeric NOT NULL, "
                "amount numeric NOT NULL, posting_date date NOT NULL, rule text NOT NULL, "
                "PRIMARY KEY (invoice_id, line_no))"
            ).format(lines),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        # Grouped by kind so each kind is one executemany; an invoice's
        # insert precedes its lines and its close, as in the log.
        opened: list[tuple[Any, ...]] = []
        added: list[tuple[Any, ...]] = []
        closed: list[tuple[Any, ...]] = []
        for event in events:
            if isinstance(event, InvoiceOpened):
                opened.append(
                    (event.originator_id, event.run_id, event.account_id, event.currency,
                     "open", event.posting_date, event.timestamp)
                )  # fmt: skip
            elif isinstance(event, InvoiceLineAdded):
                line = event.line
                added.append(
                    (event.originator_id, event.originator_version, line.line_id,
                     line.account_id, line.source, line.description, line.service_period_start,
                     line.service_period_end, line.quantity, line.unit_amount, line.amount,
                     line.posting_date, line.rule)
                )  # fmt: skip
            elif isinstance(event, InvoiceClosed):
                closed.append(
                    (event.number, event.subtotal, event.tax, event.total, event.line_count,
                     event.timestamp, event.originator_id)
                )  # fmt: skip
        if opened:
            curs.executemany(
                SQL(
                    "INSERT INTO {} (id, run_id, account_id, currency, status, posting_date, "
                    "opened_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ).format(self.table("invoices")),
                opened,
            )
        if added:
            curs.executemany(
                SQL(
                    "INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(self.table("invoice_lines")),
                added,
            )
        if closed:
            curs.executemany(
                SQL(
                    "UPDATE {} SET status = 'closed', number = %s, subtotal = %s, tax = %s, "
                    "total = %s, line_count = %s, closed_at = %s WHERE id = %s"
                ).format(self.table("invoices")),
                closed,
            )

    # Queries ------------------------------------------------------------------

    def search(
        self,
        run_id: str | None = None,
        account_id: str | None = None,
        status: str | None = None,
        batch_size: int = 2000,
    ) -> Iterator[InvoiceRow]:
        """Invoices in number order (open ones last), with their lines, streamed."""
        where, params = _filters(run_id=run_id, account_id=account_id, status=status)
        statement = SQL("SELECT * FROM {} {} ORDER BY number NULLS LAST, account_id").format(
            self.table("invoices"), where
        )
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            while rows := curs.fetchmany(batch_size):
                lines = self._lines_of([row["id"] for row in rows])
                for row in rows:
                    yield InvoiceRow.from_row(row, lines.get(row["id"], []))

    def id_of_number(self, number: int) -> UUID | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT id FROM {} WHERE number = %s").format(self.table("invoices")),
                (number,),
            )
            row = curs.fetchone()
        return None if row is None else UUID(str(row["id"]))

    def _lines_of(self, invoice_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
        grouped: dict[UUID, list[dict[str, Any]]] = {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT * FROM {} WHERE invoice_id = ANY(%s) ORDER BY invoice_id, line_no"
                ).format(self.table("invoice_lines")),
                (invoice_ids,),
            )
            for row in curs.fetchall():
                grouped.setdefault(row["invoice_id"], []).append(row)
        return grouped


def _filters(**values: str | None) -> tuple[Composable, list[Any]]:
    clauses = [SQL("{} = %s").format(SQL(column)) for column, v in values.items() if v is not None]
    params = [v for v in values.values() if v is not None]
    if not clauses:
        return SQL(""), []
    return SQL("WHERE ") + SQL(" AND ").join(clauses), params


@dataclass(frozen=True)
class InvoiceRow:
    id: UUID
    number: int | None
    account: str
    currency: str
    status: str
    run_id: str
    posting_date: date
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    closed_at: datetime | None
    lines: list[dict[str, Any]]

    @property
    def display_number(self) -> str:
        return format_invoice_number(self.number) if self.number is not None else "-"

    @classmethod
    def from_row(cls, row: dict[str, Any], lines: list[dict[str, Any]]) -> InvoiceRow:
        return cls(
            id=row["id"],
            number=row["number"],
            account=row["account_id"],
            currency=row["currency"],
            status=row["status"],
            run_id=row["run_id"],
            posting_date=row["posting_date"],
            subtotal=row["subtotal"],
            tax=row["tax"],
            total=row["total"],
            closed_at=row["closed_at"],
            lines=lines,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "number": self.number,
            "display_number": self.display_number if self.number is not None else None,
            "account": self.account,
            "currency": self.currency,
            "status": self.status,
            "run_id": self.run_id,
            "posting_date": self.posting_date.isoformat(),
            "subtotal": str(self.subtotal),
            "tax": str(self.tax),
            "total": str(self.total),
            "lines": [
                {
                    "source": line["source"],
                    "description": line["description"],
                    "service_period_start": line["service_period_start"].isoformat(),
                    "service_period_end": line["service_period_end"].isoformat(),
                    "quantity": str(line["quantity"]),
                    "unit_amount": str(line["unit_amount"]),
                    "amount": str(line["amount"]),
                    "posting_date": line["posting_date"].isoformat(),
                }
                for line in self.lines
            ],
        }


class InvoicesProjection(ViewProjection):
    name = InvoicesView.versioned_name()
    topics = tuple(get_topic(e) for e in (InvoiceOpened, InvoiceLineAdded, InvoiceClosed))
