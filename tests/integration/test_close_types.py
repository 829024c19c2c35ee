"""Invoice close types, zero invoices and the bill day, by the seed's examples.

Each scenario is a timeline of bill runs (with charges recorded between them)
for one account, and states what every run closed and what it left open.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.billing.transactions import ChargeInput, add_charges
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from domain.billing.terms import ChargeTerms
from domain.invoicing.invoice import Invoice
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from entrypoints.presenters import run_steps
from tests.conftest import account, package

Timeline = list[tuple[str, str, str, list[tuple[str, str, str]]]]
"""(run id, period start, period end, charges (id, date, amount) recorded before it)."""


def configure(billing: Billing, close_type: str, *accounts: dict[str, Any], **group: Any) -> None:
    document = {
        "bill_groups": [{"id": "g", "close_type": close_type, "zero_invoices": False, **group}],
        "accounts": [{**a, "bill_group": "g"} for a in accounts],
    }
    import_accounts(billing, parse_import(json.dumps(document).encode(), "t.json"), "t.json")


def run_timeline(billing: Billing, account_id: str, timeline: Timeline) -> list[dict[str, Any]]:
    """Execute the runs in order; per run, the invoices it closed and what is open."""
    seen: list[dict[str, Any]] = []
    for run_id, start, end, charges in timeline:
        add_charges(
            billing,
            [
                ChargeInput(
                    where=charge_id,
                    account_id=account_id,
                    terms=ChargeTerms(
                        charge_id=charge_id,
                        description=charge_id,
                        amount=Decimal(amount),
                        charge_date=date.fromisoformat(on),
                    ),
                )
                for charge_id, on, amount in charges
            ],
            "timeline",
        )
        period = Period(date.fromisoformat(start), date.fromisoformat(end))
        schedule_run(billing, run_id, period, None, Selection())
        BillRunExecutor(billing, batch_size=10).execute(run_id)
        acct = billing.get_account(account_id)
        open_invoice = billing.get_invoice(acct.open_invoice) if acct.open_invoice else None
        seen.append(
            {
                "run": run_id,
                "closed": [describe(i) for i in closed_by(billing, run_id)],
                "open": describe(open_invoice) if open_invoice else None,
                "held": len(acct.held_invoices),
            }
        )
    return seen


def closed_by(billing: Billing, run_id: str) -> list[Invoice]:
    ids = billing.queries.originators("domain.invoice:InvoiceClosed")
    invoices = billing.load_many(Invoice, ids).values()
    return sorted((i for i in invoices if i.closed_by_run == run_id), key=lambda i: i.number or 0)


def describe(invoice: Invoice) -> str:
    sources = ", ".join(f"{line.source} {line.amount}" for line in invoice.lines) or "nothing"
    return f"[{sources}] = {invoice.total}"


QUARTERLY = account("Q", package("rent", "300.00", "quarterly"))
MONTHS: Timeline = [
    ("jan", "2026-01-01", "2026-01-31", []),
    ("feb", "2026-02-01", "2026-02-28", [("credit", "2026-02-10", "-50.00")]),
    ("mar", "2026-03-01", "2026-03-31", []),
    ("apr", "2026-04-01", "2026-04-30", []),
]


@pytest.mark.parametrize(
    ("close_type", "expected"),
    [
        pytest.param(
            "after_each_bill_run",
            [
                ("jan", ["[package:rent 300.00] = 300.00"], None),
                ("feb", ["[charge:credit -50.00] = -50.00"], None),
                ("mar", [], None),
                ("apr", ["[package:rent 300.00] = 300.00"], None),
            ],
            id="after each bill run: the credit goes out in February, not with Q2",
        ),
        pytest.param(
            "post_user_billing",
            [
                ("jan", ["[package:rent 300.00] = 300.00"], None),
                ("feb", ["[charge:credit -50.00] = -50.00"], None),
                ("mar", [], None),
                ("apr", ["[package:rent 300.00] = 300.00"], None),
            ],
            id="post user billing: closed as soon as the account is billed",
        ),
        pytest.param(
            "user_bill_cycle",
            [
                ("jan", [], "[package:rent 300.00] = 300.00"),
                ("feb", [], "[package:rent 300.00, charge:credit -50.00] = 250.00"),
                ("mar", [], "[package:rent 300.00, charge:credit -50.00] = 250.00"),
                (
                    "apr",
                    ["[package:rent 300.00, charge:credit -50.00] = 250.00"],
                    "[package:rent 300.00] = 300.00",
                ),
            ],
            id="user bill cycle: open for three months, closed when the package bills again",
        ),
    ],
)
def test_a_credit_added_mid_cycle_to_a_quarterly_package(
    billing: Billing, close_type: str, expected: list[tuple[str, list[str], str | None]]
) -> None:
    configure(billing, close_type, QUARTERLY)
    seen = run_timeline(billing, "Q", MONTHS)
    assert [(s["run"], s["closed"], s["open"]) for s in seen] == expected


def test_user_bill_cycle_a_transaction_on_the_5th_waits_for_the_next_1st(
    billing: Billing,
) -> None:
    configure(
        billing, "user_bill_cycle", {**account("M", package("desk", "100.00")), "bill_day": 1}
    )
    seen = run_timeline(
        billing,
        "M",
        [
            ("d0101", "2026-01-01", "2026-01-01", []),
            ("d0105", "2026-01-05", "2026-01-05", [("extra", "2026-01-05", "20.00")]),
            ("d0201", "2026-02-01", "2026-02-01", []),
        ],
    )
    assert [(s["run"], s["closed"], s["open"]) for s in seen] == [
        ("d0101", [], "[package:desk 100.00] = 100.00"),
        ("d0105", [], "[package:desk 100.00, charge:extra 20.00] = 120.00"),
        (
            "d0201",
            ["[package:desk 100.00, charge:extra 20.00] = 120.00"],
            "[package:desk 100.00] = 100.00",
        ),
    ]


def test_after_each_bill_run_closes_invoices_of_accounts_not_billed_in_the_run(
    billing: Billing,
) -> None:
    """An invoice left open (here by a run while the group was user_bill_cycle) is
    closed by the next run's closing pass, though the account has nothing billed."""
    configure(billing, "user_bill_cycle", QUARTERLY)
    run_timeline(billing, "Q", MONTHS[:1])
    configure(billing, "after_each_bill_run", QUARTERLY)
    seen = run_timeline(billing, "Q", [("feb", "2026-02-01", "2026-02-28", [])])
    assert seen[0]["closed"] == ["[package:rent 300.00] = 300.00"]
    assert seen[0]["open"] is None
    run = billing.get_run("feb")
    assert run.closing_batches == 1 and run.statistics.invoices == 1


def test_invoices_are_released_for_rendering_only_on_the_bill_day(billing: Billing) -> None:
    """Seed: rendering and delivery happen only when the invoicer's bill day falls
    within the run's period; an invoice closed before is held until then."""
    configure(
        billing, "post_user_billing", {**account("B", package("desk", "100.00")), "bill_day": 15}
    )
    seen = run_timeline(
        billing,
        "B",
        [
            ("first-week", "2026-01-01", "2026-01-07", []),
            ("second-week", "2026-01-08", "2026-01-14", [("extra", "2026-01-09", "20.00")]),
            ("third-week", "2026-01-15", "2026-01-21", [("more", "2026-01-16", "5.00")]),
        ],
    )
    assert [s["held"] for s in seen] == [1, 2, 0]
    first, second = (closed_by(billing, r)[0] for r in ("first-week", "second-week"))
    third = closed_by(billing, "third-week")[0]
    assert not first.released or first.released_by_run == "third-week"
    assert first.released_by_run == second.released_by_run == "third-week"
    assert third.released and third.released_by_run == "third-week"
    assert billing.get_run("third-week").statistics.invoices_released == 2


def test_zero_invoices_leave_a_paper_trail_once_per_period(billing: Billing) -> None:
    configure(billing, "post_user_billing", QUARTERLY, zero_invoices=True)
    seen = run_timeline(billing, "Q", [*MONTHS[:1], ("feb", "2026-02-01", "2026-02-28", [])])
    assert seen[1]["closed"] == ["[nothing] = 0.00"]
    schedule_run(
        billing, "feb-again", Period(date(2026, 2, 1), date(2026, 2, 28)), None, Selection()
    )
    BillRunExecutor(billing, batch_size=10).execute("feb-again")
    assert closed_by(billing, "feb-again") == []


def test_no_zero_invoice_for_an_account_without_an_active_package(billing: Billing) -> None:
    configure(
        billing,
        "post_user_billing",
        account("OLD", package("desk", "100.00", end_date="2025-12-31", start_date="2025-01-01")),
        zero_invoices=True,
    )
    seen = run_timeline(billing, "OLD", MONTHS[:1])
    assert seen[0]["closed"] == []


def test_a_held_invoice_is_neither_rendered_nor_delivered_until_released(
    billing: Billing,
) -> None:
    from application.invoicing.delivery import governing_run, ready_for_delivery

    configure(
        billing, "post_user_billing", {**account("B", package("desk", "100.00")), "bill_day": 15}
    )
    run_timeline(billing, "B", [("early", "2026-01-01", "2026-01-07", [])])
    [held] = closed_by(billing, "early")
    readiness = ready_for_delivery(held, billing.get_run(governing_run(held)))
    assert not readiness and "bill day" in (readiness.reason or "")
    run_timeline(billing, "B", [("mid", "2026-01-08", "2026-01-20", [])])
    released = billing.get_invoice(held.id)
    assert released.released and governing_run(released) == "mid"
    assert (
        ready_for_delivery(released, billing.get_run("mid")).reason == "the invoice has no PDF yet"
    )


def test_a_run_without_invoicing_leaves_lines_on_open_invoices_for_the_next_one(
    billing: Billing,
) -> None:
    configure(billing, "post_user_billing", account("M", package("desk", "100.00")))
    no_invoices = RunSettings(run_invoices=False)
    schedule_run(billing, "jan", Period(date(2026, 1, 1), date(2026, 1, 31)), None, Selection(),
                         no_invoices)  # fmt: skip
    BillRunExecutor(billing, batch_size=10).execute("jan")
    jan = billing.get_run("jan")
    assert (jan.statistics.invoices, jan.statistics.invoices_left_open) == (0, 1)
    assert [s["step"] for s in run_steps(jan) if not s["ran"]] == [
        "run_dunning",
        "run_invoices",
        "collect_payments",
    ]
    seen = run_timeline(billing, "M", [("feb", "2026-02-01", "2026-02-28", [])])
    assert seen[0]["closed"] == ["[package:desk 100.00, package:desk 100.00] = 200.00"]
    assert seen[0]["open"] is None
