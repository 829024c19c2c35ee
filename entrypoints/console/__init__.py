"""The operator's console: server-rendered pages under /console, on the same
application services and JSON builders as the API, signed in with an API key
of an operator, admin or auditor (`install` adds it to the API's app)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from entrypoints.console import audit, records, run_details, run_invoices, runs, signing_in
from entrypoints.console.jobs import Jobs
from entrypoints.console.routing import ConsoleRoute
from entrypoints.console.sessions import Sessions

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.state.console_sessions = Sessions()
    app.state.console_jobs = Jobs()
    guarded = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
    for module in (runs, run_details, run_invoices, records, audit):
        module.register(guarded)
    guarded.add_api_route("/sign-out", signing_in.sign_out, methods=["POST"])
    app.include_router(signing_in.router)
    app.include_router(guarded)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
