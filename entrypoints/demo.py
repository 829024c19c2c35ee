"""`billrun demo`: a real bill run over generated accounts, with zero configuration."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from rich.table import Table

from application.bill_run_executor import BillRunExecutor
from application.errors import RunNotFound
from application.import_document import parse_import
from domain.account import default_first_index
from domain.bill_run import Selection
from domain.periods import Frequency, Period, Timing, bill_date
from entrypoints import output
from entrypoints.commands.runs import statistics_table
from entrypoints.common import progress_bar
from entrypoints.runtime import Runtime

# A fixed quarter, so a second demo finds it already billed.
DEMO_PERIOD = Period(date(2026, 1, 1), date(2026, 3, 31))

_PRODUCTS = [
    ("office", "Private office, {n} desks", "monthly", "advance", "450.00"),
    ("desk", "Dedicated desk", "monthly", "advance", "320.00"),
    ("meeting", "Meeting room bundle (10 h)", "monthly", "arrears", "180.00"),
    ("mail", "Virtual office and mail handling", "quarterly", "advance", "210.00"),
    ("storage", "Storage locker", "quarterly", "arrears", "95.50"),
    ("membership", "Annual community membership", "yearly", "advance", "1200.00"),
]
_CURRENCIES = ["EUR", "EUR", "EUR", "GBP", "USD", "JPY"]
_GROUPS = ["monthly", "monthly", "key-accounts"]


def demo_document(accounts: int, seed: int = 7) -> dict[str, Any]:
    """Deterministic demo accounts with a mix of frequencies and timings."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    records = []
    for i in range(1, accounts + 1):
        currency = _CURRENCIES[i % len(_CURRENCIES)]
        start = date(2025, 7, 1) + timedelta(days=rng.choice([0, 31, 92, 184, 197, 212, 230]))
        packages = []
        for product, description, frequency, timing, amount in rng.sample(
            _PRODUCTS, k=rng.randint(1, 3)
        ):
            price = Decimal(amount) * (150 if currency == "JPY" else 1)
            packages.append(
                {
                    "id": product,
                    "description": description.format(n=rng.randint(2, 12)),
                    "amount": str(price.quantize(Decimal(1)) if currency == "JPY" else price),
                    "frequency": frequency,
                    "timing": timing,
                    "start_date": start.isoformat(),
                    "next_bill_date": first_bill_date_from(
                        start, Frequency(frequency), Timing(timing), DEMO_PERIOD.start
                    ).isoformat(),
                }
            )
        records.append(
            {
                "id": f"DEMO-{i:04d}",
                "name": f"{rng.choice(_NAMES)} {rng.choice(_SUFFIXES)}",
                "currency": currency,
                "invoice_email": f"accounts{i}@example.test",
                "bill_group": _GROUPS[i % len(_GROUPS)],
                "packages": packages,
            }
        )
    return {"accounts": records}


def first_bill_date_from(start: date, frequency: Frequency, timing: Timing, day: date) -> date:
    """The first bill date on or after `day`, as if an earlier system had billed the rest."""
    index = default_first_index(timing)
    while bill_date(start, frequency, index) < day:
        index += 1
    return bill_date(start, frequency, index)


_NAMES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell"]
_SUFFIXES = ["Ltd", "GmbH", "SARL", "Inc", "BV", "KK"]


def next_demo_run_id(rt: Runtime) -> str:
    for n in range(1, 10_000):
        run_id = f"demo-{n:03d}"
        try:
            run = rt.billing.get_run(run_id)
        except RunNotFound:
            return run_id
        if run.status.value != "completed":
            return run_id  # resume an interrupted demo run
    raise RuntimeError("too many demo runs")


def run_demo(rt: Runtime, accounts: int) -> None:
    path = rt.settings.home / "demo-accounts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo_document(accounts), indent=2))
    summary = rt.billing.import_accounts(parse_import(path.read_bytes(), str(path)), str(path))
    output.console.print(
        f"imported {path}: {summary.accounts_opened} accounts opened, "
        f"{summary.accounts_unchanged} unchanged"
    )
    run_id = next_demo_run_id(rt)
    rt.billing.schedule_run(run_id, DEMO_PERIOD, None, Selection())
    output.console.print(f"run {run_id}: billing {DEMO_PERIOD} for all accounts")
    with progress_bar(f"run {run_id}: billing accounts") as update:
        executor = BillRunExecutor(
            rt.billing, rt.settings.batch_size, lambda p: update(p.scanned, p.in_scope)
        )
        run = executor.execute(run_id).run
    invoices = list(rt.read_side.fresh_invoices().search(run_id=run_id))
    table = Table(title=f"Invoices of run {run_id} (first 15 of {len(invoices)})")
    for column in ("number", "account", "lines", "service periods", "total"):
        table.add_column(column, justify="right" if column in ("lines", "total") else "left")
    for row in invoices[:15]:
        starts = [line["service_period_start"] for line in row.lines]
        ends = [line["service_period_end"] for line in row.lines]
        table.add_row(
            row.display_number, row.account, str(len(row.lines)),
            f"{min(starts)} .. {max(ends)}", output.money(row.total, row.currency),
        )  # fmt: skip
    if invoices:
        output.console.print(table)
    output.console.print(statistics_table(run))
    if not invoices:
        output.console.print(
            f"Nothing new to bill: the period {DEMO_PERIOD} was billed by an earlier run. "
            "Every package bill date in it has been billed exactly once."
        )
    output.console.print(
        f"Next: billrun invoice list --run {run_id} | billrun run status {run_id} --json"
    )
