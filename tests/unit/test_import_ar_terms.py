"""The import file's AR terms: a bill group's payment terms, dunning ladder and
suspended billing, an account's payment terms and auto-pay token. Every problem is
reported with its path, in one pass, and the file is refused whole."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from application.billing.import_document import json_schema, parse_import
from application.shared.errors import InvalidInput
from domain.receivables.dunning import DunningRules, DunningStage, SuspendedBilling


def account(account_id: str = "A", **fields: Any) -> dict[str, Any]:
    return {"id": account_id, "name": f"{account_id} Ltd", "currency": "EUR", **fields}


def group(group_id: str = "monthly", **fields: Any) -> dict[str, Any]:
    return {"id": group_id, **fields}


def stage(days_overdue: Any = 15, **fields: Any) -> dict[str, Any]:
    return {"days_overdue": days_overdue, **fields}


def ladder(*stages: dict[str, Any], name: str = "standard") -> dict[str, Any]:
    return {"name": name, "stages": list(stages)}


def document(*, groups: list[Any] | None = None, accounts: list[Any] | None = None) -> bytes:
    return json.dumps({"bill_groups": groups or [], "accounts": accounts or []}).encode()


def problems(raw: bytes) -> list[str]:
    with pytest.raises(InvalidInput) as refused:
        parse_import(raw, "accounts.json")
    return [str(problem) for problem in refused.value.problems]


STANDARD = ladder(
    stage(7, notify=True, template="Invoice {{ number }} is overdue."),
    stage(30, notify=True, late_fee="10.00"),
    stage(60, late_fee_percent="1.5", suspend=True),
)


def test_a_group_s_terms_dunning_ladder_and_suspended_billing_parse() -> None:
    raw = document(
        groups=[
            group(payment_terms_days=14, dunning=STANDARD, suspended_billing="hold_invoices"),
            group("plain"),
        ]
    )
    monthly, plain = parse_import(raw, "accounts.json").bill_groups
    assert monthly.payment_terms_days == 14
    assert monthly.suspended_billing is SuspendedBilling.HOLD_INVOICES
    assert monthly.dunning is not None
    assert monthly.dunning.rules() == DunningRules(
        name="standard",
        stages=(
            DunningStage(days_overdue=7, notify=True, template="Invoice {{ number }} is overdue."),
            DunningStage(days_overdue=30, notify=True, late_fee=Decimal("10.00")),
            DunningStage(days_overdue=60, late_fee_percent=Decimal("1.5"), suspend=True),
        ),
    )
    assert (plain.payment_terms_days, plain.dunning, plain.suspended_billing) == (
        None,
        None,
        SuspendedBilling.BILL,
    )


def test_a_ladder_without_a_name_is_the_default_one_and_without_stages_duns_nobody() -> None:
    [unnamed] = parse_import(
        document(groups=[group(dunning={"stages": []})]), "accounts.json"
    ).bill_groups
    assert unnamed.dunning is not None
    rules = unnamed.dunning.rules()
    assert (rules.name, rules.enabled) == ("default", False)


def test_an_account_s_payment_terms_and_auto_pay_token_parse() -> None:
    raw = document(
        accounts=[
            account("A", payment_terms_days=0, autopay_token=" tok_visa_4242 "),
            account("B", payment_terms_days=365),
            account("C"),
        ]
    )
    a, b, c = parse_import(raw, "accounts.json").accounts
    assert (a.payment_terms_days, a.autopay_token) == (0, "tok_visa_4242")
    assert (b.payment_terms_days, b.autopay_token) == (365, None)
    assert (c.payment_terms_days, c.autopay_token) == (None, None)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(
            document(groups=[group(payment_terms_days=366)]),
            "bill_groups[0].payment_terms_days: payment terms are 0 to 365 days net, not 366",
            id="a group's terms over a year",
        ),
        pytest.param(
            document(groups=[group(payment_terms_days=-1)]),
            "bill_groups[0].payment_terms_days: payment terms are 0 to 365 days net, not -1",
            id="negative group terms",
        ),
        pytest.param(
            document(groups=[group(payment_terms_days="30")]),
            'bill_groups[0].payment_terms_days: must be a whole number, not "30"',
            id="group terms as a string",
        ),
        pytest.param(
            document(groups=[group(payment_terms_days=30.5)]),
            "bill_groups[0].payment_terms_days: must be a whole number, not 30.5",
            id="group terms with a fraction",
        ),
        pytest.param(
            document(groups=[group(suspended_billing="skip")]),
            "bill_groups[0].suspended_billing: must be one of 'bill' or 'hold_invoices', "
            'not "skip"',
            id="an unknown suspended billing",
        ),
        pytest.param(
            document(groups=[group(dunning=[stage()])]),
            "bill_groups[0].dunning: Input should be a valid dictionary or instance of "
            'DunningRecord: [{"days_overdue": 15}]',
            id="a ladder that is not an object",
        ),
        pytest.param(
            document(groups=[group(dunning={"name": "x"})]),
            "bill_groups[0].dunning.stages: required field is missing",
            id="a ladder without stages",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(notify=True), name=" "))]),
            'bill_groups[0].dunning.name: must be a non-empty string, not " "',
            id="a blank ladder name",
        ),
        pytest.param(
            document(groups=[group(dunning={**ladder(stage(notify=True)), "grace": 3})]),
            "bill_groups[0].dunning.grace: unknown field",
            id="an unknown ladder field",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(0, notify=True)))]),
            "bill_groups[0].dunning.stages[0].days_overdue: a stage is reached 1 day overdue "
            "or later, not 0",
            id="a stage on the due date",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(True, notify=True)))]),
            "bill_groups[0].dunning.stages[0].days_overdue: must be a whole number, not true",
            id="days overdue as a boolean",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder({"notify": True}))]),
            "bill_groups[0].dunning.stages[0].days_overdue: required field is missing",
            id="a stage without its days",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(late_fee="0")))]),
            'bill_groups[0].dunning.stages[0].late_fee: "0" must be positive',
            id="a late fee of zero",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(late_fee=10)))]),
            "bill_groups[0].dunning.stages[0].late_fee: must be a decimal string such as "
            '"1200.00", not 10',
            id="a late fee as a JSON number",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(late_fee="ten")))]),
            'bill_groups[0].dunning.stages[0].late_fee: not a decimal: "ten"',
            id="a late fee that is not a decimal",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(late_fee_percent="150")))]),
            'bill_groups[0].dunning.stages[0].late_fee_percent: "150" is not a percentage '
            "from 0 to 100",
            id="a late fee over 100 percent",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(late_fee_percent="-2")))]),
            'bill_groups[0].dunning.stages[0].late_fee_percent: "-2" must be positive',
            id="a negative late fee percentage",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(notify="maybe")))]),
            'bill_groups[0].dunning.stages[0].notify: must be true or false, not "maybe"',
            id="notify that is not a boolean",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(notify=True, template="  ")))]),
            "bill_groups[0].dunning.stages[0].template: a blank template: leave it out for "
            "the built-in one",
            id="a blank template",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(suspend=True, template="Hi")))]),
            "bill_groups[0].dunning.stages[0].template: a notice template on a stage that "
            "does not notify",
            id="a template on a stage that does not notify",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage()))]),
            "bill_groups[0].dunning.stages[0]: the stage has no action: notify, late_fee, "
            "late_fee_percent or suspend",
            id="a stage without an action",
        ),
        pytest.param(
            document(groups=[group(dunning=ladder(stage(notify=True, colour="red")))]),
            "bill_groups[0].dunning.stages[0].colour: unknown field",
            id="an unknown stage field",
        ),
        pytest.param(
            document(
                groups=[group(dunning=ladder(stage(30, notify=True), stage(30, suspend=True)))]
            ),
            "bill_groups[0].dunning.stages[1].days_overdue: 30 is not after stages[0]'s 30: "
            "stages are in increasing days overdue",
            id="two stages on the same day",
        ),
        pytest.param(
            document(
                groups=[group(dunning=ladder(stage(30, notify=True), stage(15, suspend=True)))]
            ),
            "bill_groups[0].dunning.stages[1].days_overdue: 15 is not after stages[0]'s 30: "
            "stages are in increasing days overdue",
            id="stages out of order",
        ),
        pytest.param(
            document(accounts=[account(payment_terms_days=400)]),
            "accounts[0].payment_terms_days: payment terms are 0 to 365 days net, not 400",
            id="an account's terms over a year",
        ),
        pytest.param(
            document(accounts=[account(payment_terms_days=None, autopay_token="")]),
            'accounts[0].autopay_token: must be a non-empty string, not ""',
            id="a blank auto-pay token",
        ),
        pytest.param(
            document(accounts=[account(autopay_token=4242)]),
            "accounts[0].autopay_token: must be a non-empty string, not 4242",
            id="an auto-pay token that is not a string",
        ),
        pytest.param(
            document(accounts=[account("HQ"), account("BR", invoicer="HQ", payment_terms_days=7)]),
            "accounts[1].payment_terms_days: BR is billed onto HQ's invoices, which carry HQ's "
            "payment terms: set them on HQ",
            id="payment terms on a family member",
        ),
        pytest.param(
            document(accounts=[account("HQ"), account("BR", invoicer="HQ", autopay_token="t")]),
            "accounts[1].autopay_token: BR is billed onto HQ's invoices, which HQ's auto-pay "
            "pays: set it on HQ",
            id="auto-pay on a family member",
        ),
    ],
)
def test_a_bad_ar_field_is_reported_with_its_path(raw: bytes, problem: str) -> None:
    assert problems(raw) == [problem]


def test_every_ar_problem_is_reported_in_one_pass_and_a_bad_stage_hides_no_other() -> None:
    raw = document(
        groups=[
            group("fine", dunning=STANDARD),
            group(
                "bad",
                payment_terms_days=400,
                dunning=ladder(
                    stage(30, notify=True),
                    stage(45, late_fee="-5"),  # invalid: left out of the ladder checks
                    stage(20, suspend=True),  # still seen to come before stage 0's 30
                    stage(60),
                ),
            ),
        ],
        accounts=[account("A", payment_terms_days=-3), account("B", autopay_token=" ")],
    )
    assert problems(raw) == [
        "accounts[0].payment_terms_days: payment terms are 0 to 365 days net, not -3",
        'accounts[1].autopay_token: must be a non-empty string, not " "',
        'bill_groups[1].dunning.stages[1].late_fee: "-5" must be positive',
        "bill_groups[1].dunning.stages[2].days_overdue: 20 is not after stages[0]'s 30: "
        "stages are in increasing days overdue",
        "bill_groups[1].dunning.stages[3]: the stage has no action: notify, late_fee, "
        "late_fee_percent or suspend",
        "bill_groups[1].payment_terms_days: payment terms are 0 to 365 days net, not 400",
    ]


def test_the_json_schema_describes_the_ar_fields() -> None:
    defs = json_schema()["$defs"]
    group_fields = defs["BillGroupRecord"]["properties"]
    assert set(group_fields) >= {"payment_terms_days", "dunning", "suspended_billing"}
    assert {"type": "integer", "minimum": 0, "maximum": 365} in group_fields["payment_terms_days"][
        "anyOf"
    ]
    stage_fields = defs["DunningStageRecord"]["properties"]
    assert defs["DunningStageRecord"]["required"] == ["days_overdue"]
    assert stage_fields["late_fee"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert stage_fields["late_fee_percent"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert defs["DunningRecord"]["required"] == ["stages"]
    account_fields = defs["AccountRecord"]["properties"]
    assert set(account_fields) >= {"payment_terms_days", "autopay_token"}


def test_null_terms_are_stated_and_left_out_terms_are_not() -> None:
    """null clears the stored terms or token; a field left out leaves them as they are
    (`importing.import_accounts` writes only what a record states)."""
    raw = document(
        accounts=[account("A", payment_terms_days=None, autopay_token=None), account("B")]
    )
    a, b = parse_import(raw, "accounts.json").accounts
    assert {"payment_terms_days", "autopay_token"} <= a.model_fields_set
    assert not {"payment_terms_days", "autopay_token"} & b.model_fields_set
