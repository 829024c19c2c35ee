"""The JSON of an audit verification: what `billrun audit verify --json` prints
and what `GET /v1/audit/verify` answers (one serializer)."""

from __future__ import annotations

from typing import Any

from projections.audit_seal import Verification


def verification_json(
    result: Verification,
    expect_head: str | None,
    at: int | None,
    signature_valid: bool | None = None,
) -> dict[str, Any]:
    """The verification, and whether the head anchored at `at` (default: the current
    head) is `expect_head` (and, for a signed anchor, whether its signature holds)."""
    recomputed = result.head.link if at is None else result.link_at
    report = {**result.as_json(), "expected_head_matches": anchored_ok(result, expect_head, at)}
    if signature_valid is not None:
        report["expected_head_matches"] = report["expected_head_matches"] and signature_valid
    if expect_head is not None:
        report["expected_head_at"] = result.head.notification_id if at is None else at
        report["head_at_expected"] = recomputed
    if signature_valid is not None:
        report["anchor_signature_valid"] = signature_valid
    return report


def anchored_ok(result: Verification, expect_head: str | None, at: int | None) -> bool:
    """Whether the log still leads to the anchored head (True when none is given)."""
    recomputed = result.head.link if at is None else result.link_at
    return expect_head is None or recomputed == expect_head
