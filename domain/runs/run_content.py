"""The content digest of a bill run: what it billed, as one order-free number.

Each billed line contributes SHA-256 of its identity and amounts (invoice, line
id, account, source, currency, amount, tax); the run's digest is the sum of
those numbers modulo 2**256. A sum does not depend on the order lines were
billed in or on how accounts fell into batches, and two sums add up, so each
batch records its part and the run adds them: a preview (which computes the
same lines without writing) and the execution that follows have equal digests
exactly when they bill the same lines to the same invoices.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from uuid import UUID

from domain.billing.lines import InvoiceLine

MODULUS = 2**256
EMPTY = format(0, "064x")


def line_digest(invoice_id: UUID, line: InvoiceLine) -> int:
    text = "|".join(
        (
            str(invoice_id),
            str(line.line_id),
            line.account_id,
            line.source,
            line.currency,
            str(line.amount),
            str(line.tax),
        )
    )
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


class RunContent:
    """Accumulates what a run (or one batch, or a preview) billed: the digest, the
    invoices and lines counted, amounts per currency and kind of line."""

    def __init__(self) -> None:
        self._sum = 0
        self.invoices: set[UUID] = set()
        self.lines = 0
        self.totals: dict[str, dict[str, Decimal]] = {}
        self.counts: dict[str, int] = {}
        """Lines per kind."""

    def add_invoice(self, invoice_id: UUID) -> None:
        self.invoices.add(invoice_id)

    def add(self, invoice_id: UUID, line: InvoiceLine) -> None:
        self._sum = (self._sum + line_digest(invoice_id, line)) % MODULUS
        self.invoices.add(invoice_id)
        self.lines += 1
        per_kind = self.totals.setdefault(line.currency, {})
        kind = str(line.kind)
        per_kind[kind] = per_kind.get(kind, Decimal(0)) + line.amount
        self.counts[kind] = self.counts.get(kind, 0) + 1

    @property
    def digest(self) -> str:
        return format(self._sum, "064x")


def add_digests(a: str, b: str) -> str:
    if not a and not b:
        return ""  # no lines digested on either side: nothing to add
    return format((int(a or EMPTY, 16) + int(b or EMPTY, 16)) % MODULUS, "064x")
