"""`billrun audit ...`: the tamper-evident seal over the event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from entrypoints import output
from entrypoints.common import JsonFlag, refusals, runtime
from entrypoints.refusals import UsageError
from entrypoints.representations_audit import verification_json
from projections.audit_seal import (
    ANCHOR_ALGORITHM,
    SealHead,
    Verification,
    seal_up_to_head,
    sign_head,
    signature_ok,
    verify,
)

audit_app = typer.Typer(
    help="Verify that nothing in the event log was altered, deleted or inserted.",
    no_args_is_help=True,
)


KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="BILLRUN_AUDIT_KEY_FILE",
        help="Secret key for signing and checking anchored heads (HMAC-SHA256); keep it "
        "outside the database and away from anyone with write access to it.",
    ),
]


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as error:
        raise UsageError(f"--key-file {path}: cannot read it ({error.strerror})") from None
    if len(key) < 16:
        raise UsageError(f"--key-file {path}: a key needs at least 16 bytes, it has {len(key)}")
    return key


def _read_anchor(path: Path) -> tuple[SealHead, str]:
    """A head as `billrun audit head --json --key-file K` printed it."""
    try:
        data = json.loads(path.read_text())
        head = SealHead(int(data["notification_id"]), str(data["link"]), int(data["count"]))
        signature = str(data["signature"])
    except OSError as error:
        raise UsageError(f"--anchor {path}: cannot read it ({error.strerror})") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(
            f"--anchor {path}: not a signed head from `billrun audit head --json "
            f"--key-file ...` (needs notification_id, link, count, signature): {error}"
        ) from None
    return head, signature


def _anchored(
    start: int,
    expect_head: str | None,
    at: int | None,
    anchor: Path | None,
    key_file: Path | None,
) -> tuple[int | None, str | None, tuple[SealHead, str, bytes] | None]:
    """(--at, --expect-head, the signed anchor with its key) from the options."""
    if at is not None and expect_head is None:
        raise UsageError("--at names where --expect-head was anchored: give --expect-head too")
    if anchor is not None and expect_head is not None:
        raise UsageError("give either --anchor or --expect-head, not both")
    signed = None
    if anchor is not None:
        if key_file is None:
            raise UsageError("--anchor needs --key-file (or BILLRUN_AUDIT_KEY_FILE) to check it")
        key = _read_key(key_file)
        head, signature = _read_anchor(anchor)
        signed = (head, signature, key)
        at, expect_head = head.notification_id, head.link
    if at is not None and at < start:
        raise UsageError(f"--at {at} is before --from {start}: the walk must pass it")
    return at, expect_head, signed


@audit_app.command("verify")
@refusals
def audit_verify(
    start: Annotated[int, typer.Option("--from", min=1, help="Start at this notification id.")] = 1,
    expect_head: Annotated[
        str | None,
        typer.Option(help="Fail unless the head equals this anchored hash (see --at)."),
    ] = None,
    at: Annotated[
        int | None,
        typer.Option(
            "--at",
            min=1,
            help="The notification the --expect-head hash was anchored at (as `audit head` "
            "printed it); default: the current head.",
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            help="A signed head saved from `audit head --json --key-file K`: fail unless "
            "its signature holds with --key-file and the log still leads to it."
        ),
    ] = None,
    key_file: KeyFile = None,
    json_out: JsonFlag = False,
) -> None:
    """Recompute the hash chain from the stored events and compare it with the seal.

    New events are sealed first. Exit code 0 when the log matches its seal (and the
    anchored head, if given); 1 with every finding (altered, deleted or inserted
    events, gaps in an aggregate's versions, a rewritten seal), the first 100 listed.
    """
    at, expect_head, signed = _anchored(start, expect_head, at, anchor, key_file)
    with runtime() as rt:
        seal = rt.read_side.audit_seal()
        seal_up_to_head(rt.billing, seal)
        result = verify(rt.billing, seal, start, at)
    anchored_at = result.head.notification_id if at is None else at
    recomputed = result.head.link if at is None else result.link_at
    signature_valid = None if signed is None else signature_ok(*signed)
    anchored_ok = (expect_head is None or recomputed == expect_head) and signature_valid in (
        None,
        True,
    )
    if json_out:
        output.print_json(verification_json(result, expect_head, at, signature_valid))
    elif result.ok and anchored_ok:
        anchored = (
            ""
            if expect_head is None
            else f"; matches the {'signed ' if signed else ''}head anchored at "
            f"notification {anchored_at}"
        )
        output.console.print(
            f"OK: {result.checked} events checked, {result.head.count} sealed; "
            f"head {result.head.link} at notification {result.head.notification_id}{anchored}",
            soft_wrap=True,
        )
    if not json_out and not result.ok:
        _print_findings(result)
    if not json_out and signature_valid is False:
        output.errors.print(
            f"[red]MISMATCH:[/red] the anchor's signature does not hold with this key: "
            f"{anchor} was altered or signed with another key",
            soft_wrap=True,
        )
    elif not json_out and not anchored_ok:
        where = "current head" if at is None else f"head at notification {anchored_at}"
        output.errors.print(
            f"[red]MISMATCH:[/red] the {where} {recomputed or '(no sealed event there)'} "
            f"is not the anchored {expect_head}: the log or the seal was rewritten",
            soft_wrap=True,
        )
    if not (result.ok and anchored_ok):
        raise typer.Exit(1)


def _print_findings(result: Verification) -> None:
    """One line for one finding (as before); a count, then a line each, for more."""
    if result.findings_count == 1 and result.finding is not None:
        text = escape(str(result.finding))
        output.errors.print(f"[red]TAMPERED:[/red] {text}", soft_wrap=True, highlight=False)
        return
    listed = len(result.findings)
    first = f" (the first {listed} listed)" if listed < result.findings_count else ""
    output.errors.print(
        f"[red]TAMPERED:[/red] {result.findings_count} findings{first}", soft_wrap=True
    )
    for finding in result.findings:
        output.errors.print(f"  {escape(str(finding))}", soft_wrap=True, highlight=False)


@audit_app.command("head")
@refusals
def audit_head(key_file: KeyFile = None, json_out: JsonFlag = False) -> None:
    """Seal new events and print the chain's head, to anchor it somewhere else.

    With --key-file the head is signed (HMAC-SHA256), so `audit verify --anchor`
    can later tell it from a head forged by someone who rewrote the seal.
    """
    key = None if key_file is None else _read_key(key_file)
    with runtime() as rt:
        seal = rt.read_side.audit_seal()
        seal_up_to_head(rt.billing, seal)
        head = seal.head()
    signature = None if key is None else sign_head(head, key)
    if json_out:
        signed = (
            {} if signature is None else {"algorithm": ANCHOR_ALGORITHM, "signature": signature}
        )
        output.print_json({**head.__dict__, **signed})
        return
    output.console.print(
        f"{head.link} (notification {head.notification_id}, {head.count} events)"
        + ("" if signature is None else f" signed {ANCHOR_ALGORITHM} {signature}"),
        soft_wrap=True,
    )
