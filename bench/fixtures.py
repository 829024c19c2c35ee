"""Set-up shared by benchmarks that need a billed log: N accounts imported
through `importing.import_accounts` and one bill run executed over them.

The accounts are the ones bench/bill_run.py bills (one monthly advance package
each, five prices in four currencies, three bill groups), so the event log is
the same shape: per account `AccountOpened` and `PackageAdded` from the import,
then `PackageBilled`, `InvoiceOpened`, `InvoiceLineAdded` and `InvoiceClosed`
from the run, plus `InvoiceNumbersReserved` and `RunBatchCompleted` per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from application.billing.import_document import (
    AccountRecord,
    ChargeRecord,
    ImportDocument,
    PackageRecord,
    UsageRecord,
)
from application.billing.importing import import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from bench.common import log, stopwatch
from domain.runs.settings import Selection
from domain.shared.periods import Frequency, Period, Timing

RUN_ID = "bench-2026-04"
PERIOD = Period(date(2026, 4, 1), date(2026, 4, 30))
# (currency, monthly amount): amounts valid for each currency's minor units.
_PRICES = [
    ("EUR", "450.00"),
    ("EUR", "320.00"),
    ("GBP", "275.50"),
    ("USD", "199.99"),
    ("JPY", "48000"),
]
_GROUPS = ["monthly", "monthly", "key-accounts"]


def import_document(
    accounts: int, usage_and_charges: bool = False, first: int = 1, month: date = PERIOD.start
) -> ImportDocument:
    """N accounts (BENCH-<first> onwards), one monthly advance package each, next
    bill date 2026-04-01; with `usage_and_charges`, also one usage record (at the
    package's usage rate) and one one-off charge each, both dated in April: three lines per invoice.

    Built from the pydantic models directly (the same validators run as for a
    parsed file), so the import path is the real one minus JSON parsing.
    """
    records = []
    suffix = "" if month == PERIOD.start else f"-{month:%Y%m}"
    for i in range(first, first + accounts):
        currency, amount = _PRICES[i % len(_PRICES)]
        whole = currency == "JPY"
        extras: dict[str, Any] = {}
        if usage_and_charges:
            extras = {
                "usage": [
                    UsageRecord(
                        id=f"u{i}{suffix}",
                        package_id="office",
                        quantity=str(120 + i % 7),  # type: ignore[arg-type]  # validated from a string
                        occurred_on=month.replace(day=12).isoformat(),  # type: ignore[arg-type]
                    )
                ],
                "charges": [
                    ChargeRecord(
                        id=f"setup{suffix}",
                        description="Meeting room, half day",
                        amount="9000" if whole else "85.00",  # type: ignore[arg-type]
                        date=month.replace(day=20).isoformat(),  # type: ignore[arg-type]
                    )
                ],
            }
        records.append(
            AccountRecord(
                id=f"BENCH-{i:07d}",
                name=f"Bench Customer {i} Ltd",
                currency=currency,
                invoice_email=f"ap{i}@example.test",
                bill_group=_GROUPS[i % len(_GROUPS)],
                packages=[
                    PackageRecord(
                        id="office",
                        description="Private office, 4 desks",
                        amount=amount,  # type: ignore[arg-type]  # validated from a string
                        frequency=Frequency.MONTHLY,
                        timing=Timing.ADVANCE,
                        start_date="2026-01-01",  # type: ignore[arg-type]
                        next_bill_date="2026-04-01",  # type: ignore[arg-type]
                        usage_rate="12" if whole else "0.12",  # type: ignore[arg-type]
                    )
                ],
                **extras,
            )
        )
    return ImportDocument(accounts=records)


@dataclass(frozen=True)
class BilledLog:
    accounts: int
    import_events: int
    run_events: int
    head: int
    """The notification id of the last event: the number of events in the log."""
    import_seconds: float
    run_seconds: float


def billed_log(
    billing: Billing, accounts: int, batch_size: int = 1000, import_chunk: int | None = None
) -> BilledLog:
    """Import N accounts and execute RUN_ID over them; refuse a run that did not
    bill every account exactly once. `import_chunk`: import that many accounts per
    call (one transaction each) rather than all at once, for benches that time
    something else (one 100,000-account transaction hung on the loaded machine)."""
    log(f"importing {accounts:,} accounts through importing.import_accounts")
    with stopwatch() as importing:
        document = import_document(accounts)
        chunk = import_chunk or accounts
        events = 0
        for start in range(0, accounts, chunk):
            part = ImportDocument(accounts=document.accounts[start : start + chunk])
            events += import_accounts(billing, part, "bench").events
        del document
    schedule_run(billing, RUN_ID, PERIOD, None, Selection())
    before_run = billing.queries.head()
    log(f"imported {events:,} events in {importing[0]:.1f}s; executing run {RUN_ID}")
    with stopwatch() as running:
        execution = BillRunExecutor(billing, batch_size).execute(RUN_ID)
    stats = execution.run.statistics
    if not (stats.accounts_billed == stats.invoices == stats.lines == accounts):
        raise SystemExit(f"the run did not bill every account once: {stats}")
    head = billing.queries.head()
    log(f"run wrote {head - before_run:,} events in {running[0]:.1f}s; the log holds {head:,}")
    return BilledLog(
        accounts=accounts,
        import_events=events,
        run_events=head - before_run,
        head=head,
        import_seconds=importing[0],
        run_seconds=running[0],
    )
