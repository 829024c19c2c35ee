"""The audit page: the seal's head and what `billrun audit verify` finds, and
each read model's state (lag, needs rebuild) with a rebuild button for admins
whose progress the page polls.

Verification reads the whole log, so the page loads without it and asks for
it right after (`/console/audit/verify`): the page stays fast on a big log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from entrypoints.console.jobs import Jobs, Progress
from entrypoints.console.routing import book_of
from entrypoints.console.views import render
from entrypoints.http.books import Book
from projections.audit_seal import seal_up_to_head, verify
from projections.catalog import READ_MODELS, ReadSide
from projections.rebuild import RebuildRefused, rebuild


def register(router: APIRouter) -> None:
    router.add_api_route("/audit", audit_page, methods=["GET"])
    router.add_api_route("/audit/verify", verify_fragment, methods=["GET"])
    router.add_api_route("/audit/projections", projections_fragment, methods=["GET"])
    router.add_api_route("/audit/projections/{name}/rebuild", rebuild_projection, methods=["POST"])


def _jobs(request: Request) -> Jobs:
    jobs: Jobs = request.app.state.console_jobs
    return jobs


def audit_page(request: Request) -> Response:
    book = book_of(request)
    with book.reading() as read_side:
        seal = read_side.audit_seal()
        head = seal.head()
    return render(
        request, "audit.html", head=head.__dict__, **projections_context(book, _jobs(request))
    )


def verify_fragment(request: Request) -> Response:
    book = book_of(request)
    with book.reading() as read_side:
        seal = read_side.audit_seal()
        seal_up_to_head(book.billing, seal)
        result = verify(book.billing, seal, 1, None)
    return render(request, "_verify.html", result=result.as_json(), ok=result.ok)


def projections_fragment(request: Request) -> Response:
    return render(
        request, "_projections.html", **projections_context(book_of(request), _jobs(request))
    )


def projections_context(book: Book, jobs: Jobs) -> dict[str, Any]:
    with book.reading() as read_side:
        states = [state.as_json() for state in read_side.states()]
    for state in states:
        state["rebuildable"] = READ_MODELS[state["name"]].rebuildable
        state["job"] = jobs.of(book.tenant, "rebuild", state["name"])
    running = any(s["job"] is not None and s["job"].running for s in states)
    return {"projections": states, "polling": running}


async def rebuild_projection(request: Request, name: str) -> Response:
    book = book_of(request)
    if name not in READ_MODELS or not READ_MODELS[name].rebuildable:
        raise RebuildRefused(f"{name!r} is not a read model that can be rebuilt")

    def work(update: Progress) -> str:
        # A read side of its own: pages keep reading the current version meanwhile.
        read_side = ReadSide(book.billing, book.runtime.env)
        try:
            # The server's read side switches with it (no read meets a dropped table).
            outcome = rebuild(read_side, name, on_progress=update, serving=book.reading)
        finally:
            read_side.close()
        return (
            f"{outcome.active} serves reads "
            f"({outcome.positions:,} positions in {outcome.seconds:.1f} s)"
        )

    _jobs(request).start(book.tenant, "rebuild", name, work)
    return RedirectResponse("/console/audit#projections", status_code=303)
