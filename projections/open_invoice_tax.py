"""The line tax of invoices until they close, for the run report's tax rounding:
an invoice's tax is each rate's taxable amount taxed and rounded once (BR-CO-17),
its lines keep their own rounded tax, and the difference shows once it closes."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable

from domain.invoicing.events import InvoiceClosed


class OpenInvoiceTax:
    """A batch's line tax per invoice: the lines' tax of each invoice it closes
    (added in this batch, or kept from earlier ones in `open_invoice_tax`), and
    what it leaves open, kept for the batch that will close it."""

    def __init__(self) -> None:
        self.pending: dict[UUID, Decimal] = {}
        self.closed: list[tuple[InvoiceClosed, Decimal]] = []

    def add(self, invoice_id: UUID, tax: Decimal) -> None:
        self.pending[invoice_id] = self.pending.get(invoice_id, Decimal(0)) + tax

    def close(self, event: InvoiceClosed) -> None:
        """No line is added to a closed invoice: its line tax is complete now."""
        self.closed.append((event, self.pending.pop(event.originator_id, Decimal(0))))

    def roundings(
        self, curs: Cursor[DictRow], table: Composable
    ) -> list[tuple[InvoiceClosed, Decimal]]:
        """Each closed invoice with its tax less its lines' tax; the still open
        invoices' line tax is kept (one statement each way per batch)."""
        stored: dict[UUID, Decimal] = {}
        if self.closed:
            curs.execute(
                SQL("DELETE FROM {} WHERE invoice_id = ANY(%s) RETURNING *").format(table),
                ([event.originator_id for event, _ in self.closed],),
            )
            stored = {row["invoice_id"]: row["line_tax"] for row in curs.fetchall()}
        if self.pending:
            curs.executemany(
                SQL(
                    "INSERT INTO {} AS t VALUES (%s, %s) ON CONFLICT (invoice_id) "
                    "DO UPDATE SET line_tax = t.line_tax + excluded.line_tax"
                ).format(table),
                list(self.pending.items()),
            )
        return [
            (event, event.tax - here - stored.get(event.originator_id, Decimal(0)))
            for event, here in self.closed
        ]
