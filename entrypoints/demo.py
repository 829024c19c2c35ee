"""`billrun demo`: a real bill run over generated accounts, with zero configuration."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from rich.table import Table

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.receivables.payments import record_payment
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.errors import RunNotFound
from domain.billing.state import default_first_index
from domain.invoicing.invoice import Invoice
from domain.receivables.events import DunningApplied, DunningNoticeSent
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Frequency, Period, Timing, bill_date
from entrypoints import output
from entrypoints.common import progress_bar
from entrypoints.presenters import aging_table, statistics_table
from entrypoints.runtime import Runtime
from entrypoints.worker import run_worker
from infrastructure.file_store import FileStore, documents_root
from infrastructure.mail import outbox_folder
from infrastructure.messaging import nats_url
from infrastructure.topics import topic_of

DELIVERY_TIMEOUT_S = 120.0

# A fixed quarter, so a second demo finds it already billed.
DEMO_PERIOD = Period(date(2026, 1, 1), date(2026, 3, 31))
# Seven weeks after the quarter's invoices (due 14 days after March 31): a daily
# dunning run of that day finds them 36 days overdue.
DUNNING_DAY = date(2026, 5, 20)
DUNNING_RUN = "demo-dunning-2026-05-20"
DUNNING_ONLY = RunSettings(
    run_dunning=True, bill_packages=False, bill_usage=False, bill_charges=False,
    run_contracts=False, run_invoices=False,
)  # fmt: skip
_BILL_GROUP_AR = {
    "delivery": "file",
    "payment_terms_days": 14,
    "dunning": {
        "name": "demo",
        "stages": [
            {"days_overdue": 7, "notify": True},
            {"days_overdue": 30, "notify": True, "late_fee_percent": "2"},
            {"days_overdue": 60, "notify": True, "suspend": True},
        ],
    },
}

_PRODUCTS = [
    ("office", "Private office, {n} desks", "monthly", "advance", "450.00"),
    ("desk", "Dedicated desk", "monthly", "advance", "320.00"),
    ("meeting", "Meeting room bundle (10 h)", "monthly", "arrears", "180.00"),
    ("mail", "Virtual office and mail handling", "quarterly", "advance", "210.00"),
    ("storage", "Storage locker", "quarterly", "arrears", "95.50"),
    ("membership", "Annual community membership", "yearly", "advance", "1200.00"),
]
_CURRENCIES = ["EUR", "EUR", "EUR", "GBP", "USD", "JPY"]
_TAX_RATES = {"EUR": "20", "GBP": "20", "USD": "0", "JPY": "10"}
_EXTRA_HOURS = {"EUR": "45.00", "GBP": "40.00", "USD": "50.00", "JPY": "6750"}
"""The meeting-room package's usage rate: hours booked beyond the bundle."""
_GROUPS = ["monthly", "monthly", "key-accounts"]
_ADDRESSES = {
    "EUR": ("Rue de la Loi {n}", "Brussels", "1000", "BE"),
    "GBP": ("{n} Baker Street", "London", "NW1 6XE", "GB"),
    "USD": ("{n} Market Street", "San Francisco", "94105", "US"),
    "JPY": ("{n}-1 Marunouchi", "Tokyo", "100-0005", "JP"),
}
"""Each demo buyer's postal address, by currency (e-invoices need it: BR-10)."""


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
        usage = []
        for package in packages:
            if package["id"] == "meeting":
                package["usage_rate"] = _EXTRA_HOURS[currency]
                usage.append(
                    {
                        "id": f"booking-{i}-1",
                        "package_id": "meeting",
                        "quantity": str(rng.randint(1, 6)),
                        "occurred_on": max(start, date(2026, 2, 12)).isoformat(),
                        "description": "Meeting room, extra hours",
                    }
                )
        charges = []
        if i % 3 == 0:
            charges.append(
                {
                    "id": "catering-2026-02",
                    "description": "Event catering",
                    "amount": "9000" if currency == "JPY" else "60.00",
                    "date": "2026-02-20",
                }
            )
        autopay = {}
        if i % 4 == 0:  # a quarter pay by card; one in twenty cards is declined
            token = "tok_declined" if i % 20 == 0 else "tok_approved"
            autopay = {"autopay_token": f"{token}_demo_{i:04d}"}
        records.append(
            {
                **autopay,
                **demo_buyer(i, currency),
                "id": f"DEMO-{i:04d}",
                "name": f"{rng.choice(_NAMES)} {rng.choice(_SUFFIXES)}",
                "currency": currency,
                "invoice_email": f"accounts{i}@example.test",
                "bill_group": _GROUPS[i % len(_GROUPS)],
                "tax_rate": _TAX_RATES[currency],
                "packages": packages,
                "charges": charges,
                "usage": usage,
            }
        )
    groups = [{"id": group, **_BILL_GROUP_AR} for group in sorted(set(_GROUPS))]
    return {"bill_groups": groups, "accounts": records}


def demo_buyer(i: int, currency: str) -> dict[str, Any]:
    """The demo account's address, and for most euro buyers a Belgian VAT id and
    Peppol electronic address (0208: the enterprise number, its last two digits
    97 - the first eight mod 97), so the demo writes Peppol BIS and plain EN 16931
    e-invoices alike."""
    street, city, postcode, country = _ADDRESSES[currency]
    buyer: dict[str, Any] = {
        "address": {"street": street.format(n=i), "city": city, "postal_code": postcode,
                    "country": country},
    }  # fmt: skip
    if currency == "EUR" and i % 5 != 0:
        first8 = 4_000_000 + i
        number = f"0{first8:07d}{97 - first8 % 97:02d}"
        buyer["vat_id"] = f"BE{number}"
        buyer["electronic_address"] = {"scheme": "0208", "id": number}
    return buyer


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
    # The demo bills under the built-in demo seller on purpose: the one place its
    # runs are not refused for it.
    rt.billing.seller = None
    path = rt.settings.home / "demo-accounts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo_document(accounts), indent=2))
    summary = import_accounts(rt.billing, parse_import(path.read_bytes(), str(path)), str(path))
    output.console.print(
        f"imported {path}: {summary.accounts_opened} accounts opened, "
        f"{summary.accounts_unchanged} unchanged"
    )
    run_id = next_demo_run_id(rt)
    # Collect from the accounts on auto-pay as the run's last step (seed order).
    schedule_run(
        rt.billing, run_id, DEMO_PERIOD, None, Selection(), RunSettings(collect_payments=True)
    )
    output.console.print(f"run {run_id}: billing {DEMO_PERIOD} for all accounts")
    with progress_bar(f"run {run_id}: billing accounts") as update:
        executor = BillRunExecutor(
            rt.billing, rt.settings.batch_size, lambda p: update(p.seen, p.in_scope)
        )
        run = executor.execute(run_id).run
    invoices = list(rt.read_side.fresh_invoices().search(run_id=run_id))
    table = Table(title=f"Invoices of run {run_id} (first 15 of {len(invoices)})")
    for column in ("number", "account", "lines", "service periods", "total"):
        table.add_column(column, justify="right" if column in ("lines", "total") else "left")
    for row in invoices[:15]:
        starts = [line["service_period_start"] for line in row.lines]
        ends = [line["service_period_end"] for line in row.lines]
        periods = f"{min(starts)} .. {max(ends)}" if row.lines else "nothing due (zero invoice)"
        table.add_row(
            row.display_number, row.account, str(len(row.lines)), periods,
            output.money(row.total, row.currency),
        )  # fmt: skip
    if invoices:
        output.console.print(table)
    output.console.print(statistics_table(run))
    if run.settings.collect_payments and run.collection.attempts:
        collected = ", ".join(output.money(v, c) for c, v in run.collection.collected.items())
        output.console.print(
            f"collected from auto-pay accounts through the sandbox gateway: "
            f"{run.collection.approved} approved ({collected or 'nothing'}), "
            f"{run.collection.declined} declined, {run.collection.pending} pending"
        )
    if not invoices:
        output.console.print(
            f"Nothing new to bill: the period {DEMO_PERIOD} was billed by an earlier run. "
            "Every package bill date in it has been billed exactly once."
        )
        return
    chase_payments(rt)
    delivered = render_and_deliver(rt, [row.id for row in invoices])
    show_documents(rt, delivered)
    aging = rt.read_side.fresh_receivables().aging(DUNNING_DAY)
    output.console.print(aging_table(aging, per_account=False))
    output.console.print(f"Per account: billrun ar aging --as-of {DUNNING_DAY}")
    output.console.print(
        f"Next: billrun invoice list --run {run_id} | billrun run report {run_id} | "
        f"billrun history --run {run_id} | billrun audit verify"
    )


def chase_payments(rt: Runtime) -> None:
    """A customer pays by bank transfer, then the daily dunning run of seven weeks
    later reminds the others (the worker sends the reminders) and charges late fees
    on their next invoices."""
    paid = record_payment(
        rt.billing, "DEMO-0001", "BANK-DEMO-0001", Decimal("100.00"), date(2026, 4, 10),
        reference="SEPA transfer",
    )  # fmt: skip
    output.console.print(
        f"payment BANK-DEMO-0001: 100.00 {paid.currency} from DEMO-0001, "
        f"balance now {paid.balance} {paid.currency} (billrun account balance DEMO-0001)"
    )
    schedule_run(rt.billing, DUNNING_RUN, Period(DUNNING_DAY, DUNNING_DAY), None, Selection(),
                            DUNNING_ONLY)  # fmt: skip
    run = BillRunExecutor(rt.billing, rt.settings.batch_size).execute(DUNNING_RUN).run
    output.console.print(
        f"run {DUNNING_RUN}: dunning as of {DUNNING_DAY}: {run.statistics.dunning_applied} "
        f"overdue invoices reminded (billrun run status {DUNNING_RUN})"
    )


def render_and_deliver(rt: Runtime, invoice_ids: list[UUID]) -> list[Invoice]:
    """Start NATS and a worker in this process until every invoice is delivered."""
    with nats_url(rt.settings) as url:
        return asyncio.run(_until_delivered(rt, url, invoice_ids))


async def _until_delivered(rt: Runtime, url: str, invoice_ids: list[UUID]) -> list[Invoice]:
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(rt, url, stop))
    invoices: list[Invoice] = []
    try:
        with progress_bar("worker: rendering and delivering") as update:
            deadline = asyncio.get_running_loop().time() + DELIVERY_TIMEOUT_S
            while not worker.done():
                invoices = list(
                    (await asyncio.to_thread(rt.billing.load_many, Invoice, invoice_ids)).values()
                )
                done = sum(invoice.delivery is not None for invoice in invoices)
                notices_left = await asyncio.to_thread(_notices_left, rt)
                update(done, len(invoice_ids))
                all_done = done == len(invoice_ids) and notices_left <= 0
                if all_done or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.5)
    finally:
        stop.set()
        await worker
    return invoices


def _notices_left(rt: Runtime) -> int:
    """Dunning stages recorded but whose reminder the worker has not sent yet (every
    demo stage notifies)."""
    queries = rt.billing.queries
    head = queries.head()
    applied = queries.count(topic_of(DunningApplied), head, None)
    return applied - queries.count(topic_of(DunningNoticeSent), head, None)


def show_einvoices(rt: Runtime, invoices: list[Invoice]) -> None:
    """One document of each kind, copied under BILLRUN_HOME/demo-documents and named:
    the PDF, the UBL e-invoice (Peppol BIS when the buyer is on Peppol), the CII and
    the Factur-X PDF of the first euro invoice with lines."""
    from application.invoicing.documents import FILE_SUFFIXES, invoice_documents

    candidates = [i for i in invoices if i.currency == "EUR" and i.lines]
    if not candidates:
        return
    invoice = min(candidates, key=lambda i: i.number or 0)
    documents = invoice_documents(rt.billing, rt.settings)
    store = FileStore(documents_root(rt.settings))
    folder = rt.settings.home / "demo-documents"
    folder.mkdir(parents=True, exist_ok=True)
    output.console.print(f"[bold]E-invoices[/bold] of {invoice.display_number}, one of each kind:")
    kinds = {"pdf": "PDF", "xml": "UBL 2.1", "cii": "CII D16B", "facturx": "Factur-X"}
    for document in documents.render(invoice.id, list(kinds)):
        target = folder / f"{invoice.display_number}{FILE_SUFFIXES[document.format]}"
        target.write_bytes(store.path(document.location).read_bytes())
        output.console.print(
            f"  {kinds[document.format]:9} {target}", soft_wrap=True, highlight=False
        )


def show_documents(rt: Runtime, invoices: list[Invoice]) -> None:
    store = FileStore(documents_root(rt.settings))
    delivered = [i for i in invoices if i.delivery is not None]
    output.console.print(
        f"[bold]Documents:[/bold] {len(delivered)} of {len(invoices)} invoices rendered and "
        "delivered; the first ones:"
    )
    for invoice in sorted(delivered, key=lambda i: i.number or 0)[:3]:
        pdf = invoice.documents.get("pdf")
        assert invoice.delivery is not None
        output.console.print(
            f"  {invoice.display_number}  PDF   {store.path(pdf.location) if pdf else '-'}\n"
            f"  {' ' * len(invoice.display_number or '')}  email {invoice.delivery.location}",
            soft_wrap=True,
            highlight=False,
        )
    output.console.print(
        f"PDF and UBL XML: {store.root}\nEmails: {outbox_folder(rt.settings)}", soft_wrap=True
    )
    show_einvoices(rt, invoices)
    if len(delivered) < len(invoices):
        output.errors.print(
            f"[yellow]warning:[/yellow] {len(invoices) - len(delivered)} invoices were not "
            f"delivered within {DELIVERY_TIMEOUT_S:.0f} s; `billrun worker -v` finishes them"
        )
