"""The invoices read model: invoices and credit notes with their lines,
searchable by run, account and status."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from domain.billing.lines import DEFAULT_PACKAGE_CATEGORY, LineKind
from domain.invoicing import events as invoice_events
from domain.invoicing.documents import DocumentType
from domain.invoicing.entity_details import DEFAULT_ENTITY
from domain.invoicing.invoice_numbers import format_document_number
from domain.invoicing.review import ReviewStatus
from domain.shared.model import DomainEvent
from infrastructure.topics import topic_of
from projections.view import View, ViewProjection


class InvoicesView(View):
    name = "invoices"
    version = 4
    """2: lines carry their kind, category, tax rate and tax; invoices the run that
    closed them (close types), whether they are released or held (bill day) and
    their review status (draft, approved, quarantined, rejected, cancelled).
    3: credit notes beside invoices: each row's document type and, for a credit
    note, the invoice it corrects; numbers are unique per document type (credit
    notes have their own sequence).
    4: each row's issuing entity and printed number; numbers are unique per
    (document type, entity): each entity numbers its documents apart."""
    tables = ("invoices", "invoice_lines")

    def schema(self) -> list[Composed]:
        invoices, lines = self.table("invoices"), self.table("invoice_lines")
        return [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "id uuid PRIMARY KEY, run_id text NOT NULL, account_id text NOT NULL, "
                "currency text NOT NULL, status text NOT NULL, number bigint, "
                "posting_date date NOT NULL, subtotal numeric NOT NULL DEFAULT 0, "
                "tax numeric NOT NULL DEFAULT 0, total numeric NOT NULL DEFAULT 0, "
                "line_count int NOT NULL DEFAULT 0, opened_at timestamptz NOT NULL, "
                "closed_at timestamptz, closed_by_run text, released bool NOT NULL DEFAULT false, "
                "review_status text, document_type text NOT NULL DEFAULT 'invoice', "
                "corrects uuid, issued_by text NOT NULL DEFAULT 'default', printed_number text, "
                "UNIQUE (document_type, issued_by, number))"
            ).format(invoices),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (corrects) WHERE corrects IS NOT NULL").format(
                Identifier(f"invoices_{self.suffix}_corrects_idx"), invoices
            ),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (closed_by_run)").format(
                Identifier(f"invoices_{self.suffix}_closed_by_idx"), invoices
            ),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (run_id, number)").format(
                Identifier(f"invoices_{self.suffix}_run_idx"), invoices
            ),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (account_id, number)").format(
                Identifier(f"invoices_{self.suffix}_account_idx"), invoices
            ),
            # Keyset pages of the API (`projections/invoice_pages.py`): an index,
            # not an OFFSET that reads every row before the page.
            SQL("CREATE INDEX IF NOT EXISTS {} ON {} (opened_at, id)").format(
                Identifier(f"invoices_{self.suffix}_opened_idx"), invoices
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "invoice_id uuid NOT NULL, line_no int NOT NULL, line_id uuid NOT NULL, "
                "account_id text NOT NULL, source text NOT NULL, description text NOT NULL, "
                "service_period_start date NOT NULL, service_period_end date NOT NULL, "
                "quantity numeric NOT NULL, unit_amount numeric NOT NULL, "
                "amount numeric NOT NULL, posting_date date NOT NULL, rule text NOT NULL, "
                "kind text NOT NULL, category text NOT NULL, tax_rate numeric NOT NULL, "
                "tax numeric NOT NULL, PRIMARY KEY (invoice_id, line_no))"
            ).format(lines),
        ]

    def write(self, curs: Cursor[DictRow], events: Sequence[DomainEvent]) -> None:
        """A batch in at most five statements, whatever its size.

        An invoice opened and closed within the batch is inserted as closed (the
        row its insert and then its update would leave); one opened in an earlier
        batch is closed by one UPDATE over arrays; releases and review changes (the
        latest of each invoice in the batch) take one UPDATE each. Invoices and
        lines go in by binary COPY. A statement per event (executemany) was half of
        a rebuild's time: this is the same rows, from the same events, in one
        transaction.
        """
        opened: dict[UUID, tuple[Any, ...]] = {}  # in log order
        closing: dict[UUID, tuple[Any, ...]] = {}
        released: list[UUID] = []
        reissued: dict[UUID, date] = {}
        """Invoices a later run closed, issued on its posting date (user_bill_cycle)."""
        reviewed: dict[UUID, str] = {}
        lines: list[tuple[Any, ...]] = []
        for event in events:
            if isinstance(event, invoice_events.InvoiceOpened):
                opened[event.originator_id] = (
                    event.originator_id, event.run_id, event.account_id, event.currency,
                    event.posting_date, event.timestamp, event.document_type.value,
                    event.corrects,
                )  # fmt: skip
            elif isinstance(event, invoice_events.InvoiceLineAdded):
                line = event.line
                lines.append(
                    (event.originator_id, event.originator_version, line.line_id,
                     line.account_id, line.source, line.description, line.service_period_start,
                     line.service_period_end, line.quantity, line.unit_amount, line.amount,
                     line.posting_date, line.rule, str(line.kind), line.category, line.tax_rate,
                     line.tax)
                )  # fmt: skip
            elif isinstance(event, invoice_events.InvoiceClosed):
                closing[event.originator_id] = (
                    "closed", event.number, event.subtotal, event.tax, event.total,
                    event.line_count, event.timestamp, event.closed_by_run or event.run_id,
                    event.released, ReviewStatus.DRAFT.value,
                    event.issued_by or DEFAULT_ENTITY, event.printed_number,
                )  # fmt: skip
                if event.posting_date is not None:
                    reissued[event.originator_id] = event.posting_date
            elif isinstance(event, invoice_events.InvoiceReleased):
                released.append(event.originator_id)
            elif type(event) in _REVIEW_EVENTS:
                reviewed[event.originator_id] = _REVIEW_EVENTS[type(event)].value
        invoices = [(*row, *closing.pop(id_, _OPEN)) for id_, row in opened.items()]
        closed = [(id_, *row[1:]) for id_, row in closing.items()]  # opened in an earlier batch
        if invoices:
            _copy(curs, self.table("invoices"), _INVOICE_COLUMNS, invoices)
        if lines:
            _copy(curs, self.table("invoice_lines"), _LINE_COLUMNS, lines)
        if closed:
            curs.execute(
                SQL(
                    "UPDATE {} AS i SET status = 'closed', number = c.number, "
                    "subtotal = c.subtotal, tax = c.tax, total = c.total, "
                    "line_count = c.line_count, closed_at = c.closed_at, "
                    "closed_by_run = c.closed_by_run, released = c.released, "
                    "review_status = c.review_status, issued_by = c.issued_by, "
                    "printed_number = c.printed_number "
                    "FROM unnest(%b::uuid[], %b::bigint[], %b::numeric[], %b::numeric[], "
                    "%b::numeric[], %b::int[], %b::timestamptz[], %b::text[], %b::bool[], "
                    "%b::text[], %b::text[], %b::text[]) AS c(id, number, subtotal, tax, total, "
                    "line_count, closed_at, closed_by_run, released, review_status, issued_by, "
                    "printed_number) WHERE i.id = c.id"
                ).format(self.table("invoices")),
                _columns(closed),
            )
        _reissue(curs, self.table("invoices"), reissued)
        if released:
            curs.execute(
                SQL("UPDATE {} SET released = true WHERE id = ANY(%s)").format(
                    self.table("invoices")
                ),
                (released,),
            )
        if reviewed:
            curs.execute(
                SQL(
                    "UPDATE {} AS i SET review_status = r.review_status "
                    "FROM unnest(%b::uuid[], %b::text[]) AS r(id, review_status) "
                    "WHERE i.id = r.id"
                ).format(self.table("invoices")),
                [list(reviewed), list(reviewed.values())],
            )

    # Queries ------------------------------------------------------------------

    def search(
        self,
        run_id: str | None = None,
        account_id: str | None = None,
        status: str | None = None,
        batch_size: int = 2000,
        limit: int | None = None,
        offset: int = 0,
    ) -> Generator[InvoiceRow, None, None]:
        """Invoices in number order (open ones last), then credit notes, with their
        lines, streamed; `limit` and `offset` take one page of them (the console's).
        `status` is a lifecycle status (open, closed) or a review status (draft,
        approved, quarantined, rejected, cancelled)."""
        where, params = self._where(run_id, account_id, status)
        # Invoices, then credit notes (numbered apart), each in number order.
        by_type = SQL("document_type DESC, ") if self.built_version >= 3 else SQL("")
        statement = SQL("SELECT * FROM {} {} ORDER BY {}number NULLS LAST, account_id").format(
            self.table("invoices"), where, by_type
        )
        if limit is not None:
            statement += SQL(" LIMIT %s OFFSET %s")
            params = [*params, limit, offset]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            while rows := curs.fetchmany(batch_size):
                lines = self.lines_of([row["id"] for row in rows])
                for row in rows:
                    yield InvoiceRow.from_row(row, lines.get(row["id"], []))

    def count(
        self, run_id: str | None = None, account_id: str | None = None, status: str | None = None
    ) -> int:
        """How many invoices `search` with the same filters yields."""
        where, params = self._where(run_id, account_id, status)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT count(*) AS n FROM {} {}").format(self.table("invoices"), where),
                params,
            )
            row = curs.fetchone()
        return int(row["n"]) if row else 0

    def _where(
        self, run_id: str | None, account_id: str | None, status: str | None
    ) -> tuple[Composable, list[Any]]:
        stale = self.built_version < 2  # version 1 has no closed_by_run column
        review = status in REVIEW_STATUSES
        where, params = _filters(
            account_id=account_id,
            status=None if review else status,
            review_status=status if review else None,
            run_id=run_id if stale else None,
        )
        if run_id is not None and not stale:
            # A run's invoices: those it opened, and those it closed (close types).
            where += SQL(" AND " if params else "WHERE ") + SQL(
                "(run_id = %s OR closed_by_run = %s)"
            )
            params += [run_id, run_id]
        return where, params

    def id_of_number(
        self, number: int, document_type: DocumentType = DocumentType.INVOICE
    ) -> UUID | None:
        """The default entity's invoice (or credit note) of that number: each type
        is numbered apart (other entities' documents: `id_of_printed_number`)."""
        if self.built_version < 3:  # no credit notes, no document type
            if document_type is not DocumentType.INVOICE:
                return None
            statement = SQL("SELECT id FROM {} WHERE number = %s")
            params: list[Any] = [number]
        elif self.built_version < 4:
            statement = SQL("SELECT id FROM {} WHERE document_type = %s AND number = %s")
            params = [document_type.value, number]
        else:
            statement = SQL(
                "SELECT id FROM {} WHERE document_type = %s AND number = %s "
                "AND issued_by = 'default'"
            )
            params = [document_type.value, number]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement.format(self.table("invoices")), params)
            row = curs.fetchone()
        return None if row is None else UUID(str(row["id"]))

    def id_of_printed_number(self, printed: str) -> UUID | None:
        """The document an issuing entity printed as `printed` (`BE-2026-000001`)."""
        if self.built_version < 4:
            return None
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT id FROM {} WHERE printed_number = %s").format(self.table("invoices")),
                [printed],
            )
            row = curs.fetchone()
        return None if row is None else UUID(str(row["id"]))

    def lines_of(self, invoice_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
        grouped: dict[UUID, list[dict[str, Any]]] = {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    # %b: the ids in binary, 4x cheaper to send than as text.
                    "SELECT * FROM {} WHERE invoice_id = ANY(%b) ORDER BY invoice_id, line_no"
                ).format(self.table("invoice_lines")),
                (invoice_ids,),
            )
            stale = self.built_version < 2
            for row in curs.fetchall():
                line = {**_VERSION_1_LINES, **row} if stale else row
                grouped.setdefault(line["invoice_id"], []).append(line)
        return grouped


_INVOICE_COLUMNS = {
    "id": "uuid", "run_id": "text", "account_id": "text", "currency": "text",
    "posting_date": "date", "opened_at": "timestamptz", "document_type": "text",
    "corrects": "uuid", "status": "text", "number": "int8",
    "subtotal": "numeric", "tax": "numeric", "total": "numeric", "line_count": "int4",
    "closed_at": "timestamptz", "closed_by_run": "text", "released": "bool",
    "review_status": "text", "issued_by": "text", "printed_number": "text",
}  # fmt: skip
_LINE_COLUMNS = {
    "invoice_id": "uuid", "line_no": "int4", "line_id": "uuid", "account_id": "text",
    "source": "text", "description": "text", "service_period_start": "date",
    "service_period_end": "date", "quantity": "numeric", "unit_amount": "numeric",
    "amount": "numeric", "posting_date": "date", "rule": "text", "kind": "text",
    "category": "text", "tax_rate": "numeric", "tax": "numeric",
}  # fmt: skip
_VERSION_1_LINES: dict[str, Any] = {
    "kind": LineKind.RECURRING.value,
    "category": DEFAULT_PACKAGE_CATEGORY,
    "tax_rate": Decimal(0),
    "tax": Decimal(0),
}
"""The columns version 1's lines lack, as a stale version 1 is served until rebuilt:
its lines came from events written before lines had a kind, a category or tax,
which the domain reads with these defaults (`InvoiceLine`), as a rebuild would."""


def _reissue(curs: Cursor[DictRow], table: Composable, reissued: dict[UUID, date]) -> None:
    """Set the posting (issue) date of invoices a later run closed."""
    if reissued:
        curs.execute(
            SQL(
                "UPDATE {} AS i SET posting_date = r.posting_date "
                "FROM unnest(%b::uuid[], %b::date[]) AS r(id, posting_date) WHERE i.id = r.id"
            ).format(table),
            [list(reissued), list(reissued.values())],
        )


_OPEN = (
    "open", None, Decimal(0), Decimal(0), Decimal(0), 0, None, None, False, None,
    DEFAULT_ENTITY, None,
)  # fmt: skip
"""The closing columns of an invoice not (yet) closed: the table's defaults."""
_REVIEW_EVENTS: dict[type[DomainEvent], ReviewStatus] = {
    invoice_events.InvoiceApproved: ReviewStatus.APPROVED,
    invoice_events.InvoiceQuarantined: ReviewStatus.QUARANTINED,
    invoice_events.InvoiceReleasedFromQuarantine: ReviewStatus.DRAFT,
    invoice_events.InvoiceRejected: ReviewStatus.REJECTED,
    invoice_events.InvoiceCancelled: ReviewStatus.CANCELLED,
}
"""The review events and the status each leaves the invoice in."""
REVIEW_STATUSES = frozenset(status.value for status in ReviewStatus)
_EVENTS: list[type[DomainEvent]] = [
    invoice_events.InvoiceOpened,
    invoice_events.InvoiceLineAdded,
    invoice_events.InvoiceClosed,
    invoice_events.InvoiceReleased,
    *_REVIEW_EVENTS,
]


def _copy(
    curs: Cursor[DictRow], table: Composable, columns: dict[str, str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows (values in the order of `columns`, which maps names to types) with
    one binary COPY: its rows are formatted in C, where an INSERT per row costs a
    statement and an array of each column costs Python per value."""
    statement = SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        table, SQL(", ").join(Identifier(name) for name in columns)
    )
    with curs.copy(statement) as copy:
        copy.set_types(list(columns.values()))
        for row in rows:
            copy.write_row(row)


def _columns(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """Rows to columns (one list per column), for `unnest` over one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]


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
    review_status: str | None = None
    document_type: str = DocumentType.INVOICE.value
    """`invoice` or `credit_note`."""
    corrects: UUID | None = None
    """A credit note's: the invoice it corrects."""
    printed_number: str | None = None
    """As its issuing entity's number format printed it; None: the default's."""

    @property
    def display_number(self) -> str:
        if self.number is None:
            return "-"
        if self.printed_number is not None:
            return self.printed_number
        return format_document_number(self.number, self.document_type)

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
            review_status=row.get("review_status"),
            # Version 2 (served until rebuilt) holds invoices only.
            document_type=row.get("document_type") or DocumentType.INVOICE.value,
            corrects=row.get("corrects"),
            printed_number=row.get("printed_number"),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "number": self.number,
            "display_number": self.display_number if self.number is not None else None,
            "document_type": self.document_type,
            "corrects": None if self.corrects is None else str(self.corrects),
            "account": self.account,
            "currency": self.currency,
            "status": self.status,
            "review_status": self.review_status,
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
                    "kind": line["kind"],
                    "category": line["category"],
                    "tax_rate": str(line["tax_rate"]),
                    "tax": str(line["tax"]),
                }
                for line in self.lines
            ],
        }


class InvoicesProjection(ViewProjection):
    name = InvoicesView.versioned_name()
    topics = tuple(topic_of(e) for e in _EVENTS)
