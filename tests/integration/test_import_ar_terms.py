"""The import file's AR terms against real PostgreSQL: a bill group's payment terms,
dunning ladder and suspended billing configure the group; an account's payment terms
and auto-pay token go to its receivables, saved with the account; importing the same
file again records nothing; and a bill run then uses what was imported."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.billing.import_document import parse_import
from application.billing.importing import ImportSummary, import_accounts
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from application.shared.app import Billing
from application.shared.errors import InvalidInput
from domain.billing.events import AccountOpened
from domain.receivables.dunning import DunningRules, DunningStage, SuspendedBilling
from domain.receivables.events import AutoPaySet, DunningApplied, PaymentTermsSet, ReceivablesOpened
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from tests.conftest import account, package

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))
LADDER = {
    "name": "standard",
    "stages": [
        {"days_overdue": 7, "notify": True, "template": "Invoice {{ number }} is overdue."},
        {"days_overdue": 30, "notify": True, "late_fee": "10.00"},
        {"days_overdue": 60, "late_fee_percent": "1.5", "suspend": True},
    ],
}


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bill_groups": [
            {
                "id": "monthly",
                "delivery": "none",
                "payment_terms_days": 14,
                "dunning": LADDER,
                "suspended_billing": "hold_invoices",
            }
        ],
        "accounts": [
            {**account("TERMS", package()), "payment_terms_days": 7},
            {**account("AUTOPAY", package()), "autopay_token": "tok_visa_4242"},
            account("PLAIN", package()),
        ],
    }
    doc.update(changes)
    return doc


def load(billing: Billing, doc: dict[str, Any]) -> ImportSummary:
    raw = json.dumps(doc).encode()
    return import_accounts(billing, parse_import(raw, "f.json"), "f.json")


def test_an_imported_group_s_terms_dunning_rules_and_suspended_billing_configure_it(
    billing: Billing,
) -> None:
    load(billing, document())
    group = billing.get_bill_group("monthly")
    assert group.payment_terms_days == 14
    assert group.suspended_billing is SuspendedBilling.HOLD_INVOICES
    assert group.dunning == DunningRules(
        name="standard",
        stages=(
            DunningStage(days_overdue=7, notify=True, template="Invoice {{ number }} is overdue."),
            DunningStage(days_overdue=30, notify=True, late_fee=Decimal("10.00")),
            DunningStage(days_overdue=60, late_fee_percent=Decimal("1.5"), suspend=True),
        ),
    )


def test_an_account_s_imported_terms_and_auto_pay_go_to_its_receivables(
    billing: Billing,
) -> None:
    load(billing, document())
    terms = billing.find_receivables("TERMS")
    autopay = billing.find_receivables("AUTOPAY")
    assert terms is not None and autopay is not None
    assert (terms.account_id, terms.currency) == ("TERMS", "EUR")
    assert (terms.payment_terms_days, terms.autopay_token) == (7, None)
    assert (autopay.payment_terms_days, autopay.autopay_token) == (None, "tok_visa_4242")
    # Nothing to say about PLAIN's receivables: none are opened for it.
    assert billing.find_receivables("PLAIN") is None


def test_importing_the_same_ar_terms_again_records_nothing(billing: Billing) -> None:
    first = load(billing, document())
    head = billing.queries.head()

    again = load(billing, document())

    assert billing.queries.head() == head
    # 1 group, 3 accounts with a package each, 2 receivables opened with one setting each
    assert first.events == 1 + 3 * 2 + 2 * 2
    assert again == ImportSummary(
        accounts_opened=0,
        accounts_changed=0,
        accounts_unchanged=3,
        packages_added=0,
        charges_added=0,
        usage_recorded=0,
        contracts_agreed=0,
        events=0,
    )


def test_the_receivables_are_saved_in_the_same_transaction_as_their_accounts(
    billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved: list[list[type]] = []
    save = billing.save

    def recording_save(*objs: Any, **kwargs: Any) -> Any:
        saved.append([type(obj) for obj in objs])
        return save(*objs, **kwargs)

    monkeypatch.setattr(billing, "save", recording_save)
    load(billing, document())

    [accounts_chunk] = [kinds for kinds in saved if AccountOpened in kinds]
    assert {ReceivablesOpened, PaymentTermsSet, AutoPaySet} <= set(accounts_chunk)


def test_changed_ar_terms_count_the_account_as_changed_and_null_clears_them(
    billing: Billing,
) -> None:
    load(billing, document())
    changed = document(
        accounts=[
            {**account("TERMS", package()), "payment_terms_days": 21},
            {**account("AUTOPAY", package()), "autopay_token": None},  # auto-pay off
            {**account("PLAIN", package()), "autopay_token": "tok_mc_5555"},
        ]
    )

    summary = load(billing, changed)

    assert (summary.accounts_changed, summary.accounts_unchanged) == (3, 0)
    terms = billing.find_receivables("TERMS")
    autopay = billing.find_receivables("AUTOPAY")
    plain = billing.find_receivables("PLAIN")
    assert terms is not None and autopay is not None and plain is not None
    assert terms.payment_terms_days == 21
    assert autopay.autopay_token is None
    assert (plain.payment_terms_days, plain.autopay_token) == (None, "tok_mc_5555")
    # TERMS: PaymentTermsSet; AUTOPAY: AutoPaySet; PLAIN: ReceivablesOpened, AutoPaySet
    assert summary.events == 4


def test_terms_and_auto_pay_left_out_of_a_later_file_stay_as_they_are(
    billing: Billing,
) -> None:
    """They may have been set outside the file (`billrun account terms|autopay`): a
    monthly file that does not mention them does not undo that."""
    load(billing, document())
    receivables = billing.get_receivables("PLAIN")
    receivables.set_autopay("tok_set_by_hand", billing.clock())
    billing.save(receivables)
    head = billing.queries.head()

    summary = load(billing, document(accounts=[account(a, package()) for a in
                                              ("TERMS", "AUTOPAY", "PLAIN")]))  # fmt: skip

    assert billing.queries.head() == head
    assert summary.accounts_unchanged == 3
    by_account = {a: billing.find_receivables(a) for a in ("TERMS", "AUTOPAY", "PLAIN")}
    assert {a: (r.payment_terms_days, r.autopay_token) for a, r in by_account.items() if r} == {
        "TERMS": (7, None),
        "AUTOPAY": (None, "tok_visa_4242"),
        "PLAIN": (None, "tok_set_by_hand"),
    }


def test_null_terms_for_an_account_without_receivables_open_none(billing: Billing) -> None:
    load(billing, document(accounts=[{**account("NEW", package()), "payment_terms_days": None,
                                      "autopay_token": None}]))  # fmt: skip
    assert billing.find_receivables("NEW") is None


def test_a_file_with_a_bad_ar_term_writes_nothing(billing: Billing) -> None:
    bad = document()
    bad["bill_groups"][0]["dunning"] = {"stages": [{"days_overdue": 30}]}
    bad["accounts"][1] = {**account("AUTOPAY", package()), "autopay_token": ""}
    head = billing.queries.head()

    with pytest.raises(InvalidInput) as refused:
        load(billing, bad)

    assert [str(p) for p in refused.value.problems] == [
        'accounts[1].autopay_token: must be a non-empty string, not ""',
        "bill_groups[0].dunning.stages[0]: the stage has no action: notify, late_fee, "
        "late_fee_percent or suspend",
    ]
    assert billing.queries.head() == head


def test_a_run_dues_invoices_by_the_imported_terms_and_duns_by_the_imported_rules(
    billing: Billing,
) -> None:
    load(billing, document())
    schedule_run(billing, "jan", JANUARY, None, Selection())
    BillRunExecutor(billing, batch_size=10).execute("jan")
    due = {
        account_id: next(iter(billing.get_receivables(account_id).items.values())).due_on
        for account_id in ("TERMS", "PLAIN")
    }
    # The account's own terms first, else its group's.
    assert due == {
        "TERMS": date(2026, 1, 31) + timedelta(days=7),
        "PLAIN": date(2026, 1, 31) + timedelta(days=14),
    }

    on = due["PLAIN"] + timedelta(days=30)
    dunning_only = RunSettings(
        run_dunning=True,
        bill_packages=False,
        bill_usage=False,
        bill_charges=False,
        run_contracts=False,
        run_invoices=False,
    )
    schedule_run(billing, "dun", Period(on, on), None, Selection(), dunning_only)
    BillRunExecutor(billing, batch_size=10).execute("dun")
    applied = [
        e
        for e in billing.iter_history(billing.get_receivables("PLAIN").id)
        if isinstance(e, DunningApplied)
    ]
    assert [(e.stage, e.fee) for e in applied] == [(2, Decimal("10.00"))]
