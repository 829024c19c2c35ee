"""What auditors read: the history of a run, an account, an invoice or the whole
log, streamed; the verification of the log against its seal; and the read
models' status and rebuild (admin).

History streams JSON lines (`application/x-ndjson`), the very lines `billrun
history --jsonl` prints, one page of events in memory at a time. The subject is
looked up before the first byte is sent, so an unknown one is a 404 problem, not
a 200 that stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from application.shared.history import History, HistoryEntry
from entrypoints.http.pagination import After, Limit, page_of
from entrypoints.http.routers.common import TenantBook, v1_router
from entrypoints.http.routers.invoices import InvoiceId, invoice_id_of
from entrypoints.refusals import UsageError
from entrypoints.representations_audit import verification_json
from entrypoints.representations_invoices import history_line
from projections.audit_seal import seal_up_to_head, verify
from projections.rebuild import rebuild

router = v1_router("history and audit")

LAST = 2**63 - 1
"""The largest notification id (PostgreSQL bigint)."""
FROM = Query(default=1, ge=1, le=LAST, alias="from", description="From this notification id")

Json = dict[str, Any]


class NdjsonResponse(StreamingResponse):
    media_type = "application/x-ndjson"


# Not `response_class`: FastAPI would then document the problems (4xx) as NDJSON too.
_STREAMED: dict[str, Any] = {
    "response_model": None,
    "responses": {
        200: {
            "description": "One event per line, in commit order (`billrun history --jsonl`)",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
}


def _stream(entries: Iterator[HistoryEntry]) -> NdjsonResponse:
    first = next(entries, None)  # an unknown subject raises here: a 404, not a cut stream

    def lines() -> Iterator[str]:
        if first is not None:
            yield history_line(first)
        for entry in entries:
            yield history_line(entry)

    return NdjsonResponse(lines())


@router.get("/runs/{run_id}/history", summary="A run's history", **_STREAMED)
async def run_history(book: TenantBook, run_id: str) -> NdjsonResponse:
    """The run's events and every event it caused, in commit order."""
    entries = History(book.billing).of_run(run_id)
    return await run_in_threadpool(_stream, entries)


@router.get("/accounts/{account_id}/history", summary="An account's history", **_STREAMED)
async def account_history(book: TenantBook, account_id: str) -> NdjsonResponse:
    """The account's events, its receivables' and those of its invoices and credit
    notes, in commit order."""
    entries = History(book.billing).of_account(account_id)
    return await run_in_threadpool(_stream, entries)


@router.get("/invoices/{invoice_id}/history", summary="An invoice's history", **_STREAMED)
async def invoice_history(book: TenantBook, invoice_id: InvoiceId) -> NdjsonResponse:
    """The invoice's events, in commit order."""
    chosen = await run_in_threadpool(invoice_id_of, book, invoice_id)
    entries = History(book.billing).of_invoice(chosen)
    return await run_in_threadpool(_stream, entries)


@router.get("/history", summary="The whole log", **_STREAMED)
async def log_history(
    book: TenantBook,
    start: int = Query(
        default=1, ge=1, le=LAST, alias="from", description="From this notification id"
    ),
) -> NdjsonResponse:
    """Every stored event from notification id `from` on, up to the last committed
    when the request came in (`billrun history --all --from N --jsonl`)."""
    entries = History(book.billing).of_log(start)
    return await run_in_threadpool(_stream, entries)


@router.get("/audit/verify", summary="Verify the log against its seal")
def audit_verify(
    book: TenantBook,
    start: int = Query(
        default=1, ge=1, le=LAST, alias="from", description="From this notification id"
    ),
    expect_head: str | None = Query(
        default=None, max_length=128, description="Fail unless the head equals this hash"
    ),
    at: int | None = Query(
        default=None, ge=1, le=LAST, description="The notification expect_head was anchored at"
    ),
) -> Json:
    """`billrun audit verify --json`: new events are sealed first, then the chain
    is recomputed from the stored events. `ok` false lists the findings (altered,
    deleted or inserted events). Signed anchors (`--anchor --key-file`) stay with
    the CLI: the key must not travel to the server."""
    if at is not None and expect_head is None:
        raise UsageError("at names where expect_head was anchored: give expect_head", "query.at")
    with book.reading() as read_side:
        seal = read_side.audit_seal()
        seal_up_to_head(book.billing, seal)
        result = verify(book.billing, seal, start, at)
    return verification_json(result, expect_head, at)


@router.get("/projections", summary="The read models' status")
def projections_status(book: TenantBook, limit: Limit = 20, after: After = None) -> Json:
    """`billrun projections status --json`: each read model's code and active
    version, position, the log head and lag, by name."""
    with book.reading() as read_side:
        states = sorted(read_side.states(), key=lambda state: state.name)
    return page_of(states, lambda state: state.name, after, limit, lambda state: state.as_json())


@router.post("/projections/{projection}/rebuild", summary="Rebuild a read model")
def projections_rebuild(book: TenantBook, projection: str) -> Json:
    """`billrun projections rebuild --json`: the next version is built beside the
    current one, which keeps serving, then switched to atomically. Interrupted,
    the same request again resumes."""
    with book.reading() as read_side:
        outcome = rebuild(read_side, projection)
    return dict(outcome.__dict__)
