"""What a run counted: statistics per batch and for the run, collection
statistics, where the time went, and a preview's summary. Sums are exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import Field

from domain.runs.run_content import add_digests
from domain.shared.model import ValueObject


class BatchStatistics(ValueObject):
    """What one batch (or, summed, the whole run) produced.

    The account figures (docs/architecture.md, "Run statistics") satisfy
    `accounts_seen == accounts_billed + accounts_skipped + accounts_parked`, per
    batch and so for the run; a retry moves its family out of `accounts_parked`
    (a negative count there) into billed or skipped, seeing no account anew.
    """

    accounts_scanned: int = 0
    """Accounts read from the log (every opened account, selected or not)."""
    accounts_seen: int = 0
    """Accounts the run reached: the selected invoicers and their members."""
    accounts_billed: int = 0
    """Accounts seen with something recorded by the run (lines, a zero invoice)."""
    accounts_skipped: int = 0
    """Accounts seen with nothing due in the period."""
    accounts_parked: int = 0
    """Accounts of families that could not be billed (`AccountParked`)."""
    invoices: int = 0
    """Invoices closed (and numbered)."""
    lines: int = 0
    totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' net amounts (subtotals, tax excluded), per currency."""
    tax_totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' tax, per currency."""
    gross_totals: dict[str, Decimal] = Field(default_factory=dict)
    """Closed invoices' totals (net + tax), per currency."""
    base_totals: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """The same, converted with the run's rates into the base currency (when one is
    set): `{base: {"net": ..., "tax": ..., "gross": ...}}`, each invoice's net and
    tax converted once and gross their sum."""
    invoices_left_open: int = 0
    """Invoices that received lines or were opened and stay open (close types)."""
    invoices_released: int = 0
    """Held invoices of earlier runs released for rendering and delivery."""
    content_digest: str = ""
    """The lines billed, as a sum of their digests (`domain.runs.run_content`)."""
    billed: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """Amounts billed per currency and kind of line (what a preview compares)."""
    line_counts: dict[str, int] = Field(default_factory=dict)
    """Lines billed per kind (`recurring`, `usage`, `charge`, `penalty`)."""
    dunning_applied: int = 0
    """Dunning stages applied to overdue invoices (the AR step)."""
    accounts_suspended: int = 0
    stranded: int = 0
    """Package bill dates before the period that no run billed (no run covered
    them), left owed by this run: bill them with a catch-up run."""

    def plus(self, other: BatchStatistics) -> BatchStatistics:
        return BatchStatistics(
            accounts_scanned=self.accounts_scanned + other.accounts_scanned,
            accounts_seen=self.accounts_seen + other.accounts_seen,
            accounts_billed=self.accounts_billed + other.accounts_billed,
            accounts_skipped=self.accounts_skipped + other.accounts_skipped,
            accounts_parked=self.accounts_parked + other.accounts_parked,
            invoices=self.invoices + other.invoices,
            lines=self.lines + other.lines,
            totals=_add(self.totals, other.totals),
            tax_totals=_add(self.tax_totals, other.tax_totals),
            gross_totals=_add(self.gross_totals, other.gross_totals),
            base_totals=_add_nested(self.base_totals, other.base_totals),
            invoices_left_open=self.invoices_left_open + other.invoices_left_open,
            invoices_released=self.invoices_released + other.invoices_released,
            content_digest=add_digests(self.content_digest, other.content_digest),
            billed=_add_nested(self.billed, other.billed),
            line_counts={
                kind: self.line_counts.get(kind, 0) + other.line_counts.get(kind, 0)
                for kind in sorted(set(self.line_counts) | set(other.line_counts))
            },
            dunning_applied=self.dunning_applied + other.dunning_applied,
            accounts_suspended=self.accounts_suspended + other.accounts_suspended,
            stranded=self.stranded + other.stranded,
        )


class CollectionStatistics(ValueObject):
    """What the collection step did (one batch, or summed, the run)."""

    attempts: int = 0
    approved: int = 0
    declined: int = 0
    errors: int = 0
    pending: int = 0
    """Timed out and not reconciled yet: never guessed."""
    collected: dict[str, Decimal] = Field(default_factory=dict)
    """Approved amounts, per currency."""

    def plus(self, other: CollectionStatistics) -> CollectionStatistics:
        collected = dict(self.collected)
        for currency, amount in other.collected.items():
            collected[currency] = collected.get(currency, Decimal(0)) + amount
        return CollectionStatistics(
            attempts=self.attempts + other.attempts,
            approved=self.approved + other.approved,
            declined=self.declined + other.declined,
            errors=self.errors + other.errors,
            pending=self.pending + other.pending,
            collected=dict(sorted(collected.items())),
        )


def _add(a: dict[str, Decimal], b: dict[str, Decimal]) -> dict[str, Decimal]:
    summed = dict(a)
    for currency, amount in b.items():
        summed[currency] = summed.get(currency, Decimal(0)) + amount
    return dict(sorted(summed.items()))


def _add_nested(
    a: dict[str, dict[str, Decimal]], b: dict[str, dict[str, Decimal]]
) -> dict[str, dict[str, Decimal]]:
    summed = {currency: dict(kinds) for currency, kinds in a.items()}
    for currency, kinds in b.items():
        into = summed.setdefault(currency, {})
        for kind, amount in kinds.items():
            into[kind] = into.get(kind, Decimal(0)) + amount
    return {c: dict(sorted(k.items())) for c, k in sorted(summed.items())}


class StepTimings(ValueObject):
    """Where a batch's time went, in milliseconds: billing (every billing step, one
    pass per account) and invoicing (closing, numbering, saving)."""

    billing_ms: int = 0
    invoicing_ms: int = 0
    dunning_ms: int = 0
    collection_ms: int = 0

    def plus(self, other: StepTimings) -> StepTimings:
        return StepTimings(
            billing_ms=self.billing_ms + other.billing_ms,
            invoicing_ms=self.invoicing_ms + other.invoicing_ms,
            dunning_ms=self.dunning_ms + other.dunning_ms,
            collection_ms=self.collection_ms + other.collection_ms,
        )


@dataclass(frozen=True)
class BatchCheckpoint:
    """What a batch hands its run when it is saved: which batch, the log position
    it reached, what it billed, the invoice numbers it reserved, where its time went."""

    batch: int
    cursor: int
    statistics: BatchStatistics
    invoice_numbers: Sequence[int] = ()
    timings: StepTimings | None = None


class PreviewSummary(ValueObject):
    """What a preview computed the run would bill (nothing written but this)."""

    digest: str
    invoices: int
    lines: int
    totals: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    """Amounts per currency and kind of line."""
    log_position: int
    """The log head the preview read up to."""
