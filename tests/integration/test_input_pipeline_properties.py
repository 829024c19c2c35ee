"""A property of the whole pipeline (issue 19): any import file or usage CSV is
either refused whole, with nothing written, or accepted; and what is accepted
is billed by a run (nothing parked, the run completes), applied by the
projections, rendered to PDF and XML, and delivered. Nothing accepted can ever
block a later run.

Hypothesis writes the files: text of every Unicode category (control
characters, surrogates, format and bidi characters), numbers huge and tiny,
with exponents and separators, odd dates, duplicate ids. Every example shares one
database, as an operator's imports do: a later example meets the accounts of the
earlier ones."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from application.billing.import_document import parse_import
from application.billing.importing import import_accounts
from application.billing.transactions import record_usage
from application.billing.usage_csv import parse_usage_csv
from application.invoicing.delivery import OutcomeKind
from application.runs.check import check_run
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import AccountNotFound, InvalidInput
from domain.invoicing.documents import InvoiceStatus
from domain.runs.settings import RunSettings, Selection
from domain.shared.inputs import InputRefused, check_text
from domain.shared.periods import Period
from tests.integration.helpers import FileDeliveryWorld

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
RUNS = itertools.count(1)

# Text from every corner: any code point (surrogates included), and the characters
# that broke billrun before, often enough to matter.
NASTY = list("\x00\x01\t\n\r\x7f\x85\u200b\u200e\u202e\u2028\u2066\ufeff\ufffe\uffff\ud800\udfff")
ANY_CHARACTER = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.sampled_from(NASTY),
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)
TEXT = st.one_of(
    st.text(ANY_CHARACTER, min_size=0, max_size=12),
    # Plain text with one of the characters that broke billrun in it.
    st.tuples(st.sampled_from(NASTY), st.sampled_from(["Bad", "", " Name"])).map(
        lambda p: f"Cust{p[0]}omer{p[1]}"
    ),
)
# Mostly fine text with one odd character in it: names that pass must still bill.
FAIR_TEXT = st.text(
    st.characters(codec=None, exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=12,
).filter(str.strip)
IDS = st.one_of(st.sampled_from(["P-1", "P-2", "P-3"]), TEXT)
VALID_AMOUNTS = st.one_of(
    st.integers(0, 10**6).map(str), st.decimals(min_value=0, max_value=10**6, places=2).map(str)
)
NUMBERS = st.one_of(
    VALID_AMOUNTS,
    VALID_AMOUNTS,
    st.decimals(min_value=-10**13, max_value=10**13, places=2, allow_nan=False).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e2", "1E+3", "10_000.00", "\u0661\u0662", "1e400", "1e-400",
                     "9" * 32, "0." + "0" * 30 + "1", " 12.5 ", "+3", "-0", ".5", "5."]),
    st.integers(min_value=-10**20, max_value=10**20),  # a JSON number, refused
)  # fmt: skip
DATES = st.one_of(
    st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 1, 31)).map(date.isoformat),
    st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 1, 31)).map(date.isoformat),
    st.dates().map(date.isoformat),
    st.sampled_from(["2026-02-30", "2026-01-01T00:00:00", "20260101", "0001-01-01", ""]),
    TEXT,
)


def poisoned(draw: st.DrawFn, record: dict[str, Any], odd: dict[str, Any]) -> dict[str, Any]:
    """A valid record with none, one or two fields swapped for a hostile value."""
    names = sorted(odd)
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        record[name] = draw(odd[name])
    return record


ACCOUNT_IDS = st.integers(1, 12).map(lambda n: f"PROP-{n}")
GOOD_DATES = st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 1, 31)).map(date.isoformat)


@st.composite
def packages(draw: st.DrawFn) -> dict[str, Any]:
    record = {
        "id": "P-1",
        "description": draw(st.one_of(st.just("Office"), FAIR_TEXT, TEXT)),
        "amount": draw(VALID_AMOUNTS),
        "frequency": draw(st.sampled_from(["monthly", "quarterly", "yearly"])),
        "start_date": draw(
            st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 1, 1)).map(date.isoformat)
        ),
        "usage_rate": draw(VALID_AMOUNTS),
    }
    odd = {
        "id": IDS, "description": TEXT, "amount": NUMBERS, "start_date": DATES,
        "usage_rate": NUMBERS, "frequency": st.sampled_from(["weekly?", "", "MONTHLY"]),
    }  # fmt: skip
    return poisoned(draw, record, odd)


@st.composite
def accounts(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": draw(ACCOUNT_IDS),
        "name": draw(st.one_of(st.just("Customer Ltd"), FAIR_TEXT, TEXT)),
        "currency": draw(st.sampled_from(["EUR", "EUR", "KWD", "JPY"])),
        "invoice_email": "ap@example.test",
        "bill_group": "prop",
        "packages": [draw(packages())],
    }
    if draw(st.booleans()):
        record["charges"] = [
            poisoned(
                draw,
                {"id": "C-1", "description": draw(FAIR_TEXT), "amount": "5",
                 "date": draw(GOOD_DATES)},
                {"id": IDS, "description": TEXT, "amount": NUMBERS, "date": DATES},
            )
        ]  # fmt: skip
    odd = {
        "id": st.one_of(TEXT, IDS), "name": TEXT, "invoice_email": st.one_of(
            st.just("a@b.cc,evil@x.test"), st.just('"x"<a@b.cc>'), TEXT
        ),
        "bill_day": st.one_of(st.integers(-3, 40), st.booleans(), st.just("1")),
        "currency": st.one_of(TEXT, st.just("XAU")), "tax_rate": NUMBERS,
    }  # fmt: skip
    return poisoned(draw, record, odd)


@st.composite
def usage_csvs(draw: st.DrawFn) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ["account_id", "usage_id", "package_id", "quantity", "occurred_on",
               "unit_price", "description"]  # fmt: skip
    writer.writerow(columns)
    for _ in range(draw(st.integers(1, 3))):
        row = {
            "account_id": draw(ACCOUNT_IDS), "usage_id": f"U-{draw(st.integers(1, 60))}",
            "package_id": "P-1", "quantity": draw(VALID_AMOUNTS),
            "occurred_on": draw(st.dates(date(2026, 1, 1), date(2026, 1, 31)).map(str)),
            "unit_price": draw(st.one_of(st.just(""), VALID_AMOUNTS)),
            "description": draw(st.one_of(st.just(""), FAIR_TEXT)),
        }  # fmt: skip
        odd = {
            "account_id": TEXT, "usage_id": IDS, "quantity": NUMBERS.map(str),
            "occurred_on": DATES, "unit_price": NUMBERS.map(str), "description": TEXT,
        }  # fmt: skip
        row = poisoned(draw, row, odd)
        writer.writerow([row[c] for c in columns])
    return out.getvalue().encode("utf-8", errors="surrogatepass")


def encoded(document: dict[str, Any]) -> bytes:
    # As a careless tool would write it: lone surrogates escaped as JSON allows.
    return json.dumps(document).encode()


class Pipeline(FileDeliveryWorld):
    def events(self) -> int:
        return self.billing.queries.head()

    def known(self, account_id: str) -> bool:
        try:
            self.billing.get_account(check_text(account_id, identifier=True))
        except (AccountNotFound, InputRefused):
            return False
        return True

    def refused_or_accepted(self, write: Any) -> bool:
        """True when accepted; a refusal must have written nothing."""
        before = self.events()
        try:
            write()
        except InvalidInput as refused:
            assert self.events() == before, "a refused file wrote something"
            event(f"refused: {refused.problems[0].message[:40]}")
            return False
        return True

    def bill_everything(self, account_ids: list[str]) -> None:
        """A run over the accounts; everything it closes rendered, projected, delivered."""
        run_id = f"prop-{next(RUNS)}"
        settings = RunSettings(render_invoices=True, deliver_invoices=True)
        # Every account, as an operator's run does: one poisoned account must not
        # stop the others (or itself) from billing.
        schedule_run(self.billing, run_id, JANUARY, None, Selection(), settings)
        check_run(self.billing, run_id)  # `billrun run check` reads every account
        BillRunExecutor(self.billing, batch_size=5).execute(run_id)
        run = self.billing.get_run(run_id)
        assert run.is_completed, run.status
        assert run.parked == {}, run.parked
        # The projections apply it: every invoice of the run is listed.
        rows = list(self.read_side.fresh_invoices().search(run_id=run_id))
        for row in rows:
            invoice = self.billing.get_invoice(row.id)
            if invoice.status is InvoiceStatus.OPEN:
                continue
            rendered = self.documents.render(invoice.id)
            assert {d.format for d in rendered} >= {"pdf", "xml"}
            outcome = self.delivery.deliver(invoice.id)
            assert outcome.kind is not OutcomeKind.SKIPPED or outcome.reason, outcome


@pytest.fixture
def pipeline(billing: Billing, es_env: dict[str, str], tmp_path: Path) -> Iterator[Pipeline]:
    opened = Pipeline(billing, es_env, tmp_path)
    group = {"bill_groups": [{"id": "prop", "delivery": "file"}]}
    import_accounts(billing, parse_import(encoded(group), "g.json"), "g.json")
    yield opened
    opened.read_side.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(document=st.lists(accounts(), min_size=1, max_size=3), usage=usage_csvs())
def test_any_file_is_refused_whole_or_billed_rendered_and_delivered(
    pipeline: Pipeline, document: list[dict[str, Any]], usage: bytes
) -> None:
    raw = encoded({"accounts": document})

    def import_file() -> None:
        import_accounts(pipeline.billing, parse_import(raw, "f.json"), "f.json")

    def import_usage() -> None:
        record_usage(pipeline.billing, parse_usage_csv(usage, "u.csv"), "u.csv")

    event(f"import {'accepted' if pipeline.refused_or_accepted(import_file) else 'refused'}")
    event(f"usage {'accepted' if pipeline.refused_or_accepted(import_usage) else 'refused'}")
    # Whatever was accepted, now or by an earlier example, bills without blocking.
    named = {a["id"] for a in document if isinstance(a.get("id"), str) and a["id"].strip()}
    known = sorted(a for a in named if pipeline.known(a.strip()))
    if known:
        pipeline.bill_everything(known)
