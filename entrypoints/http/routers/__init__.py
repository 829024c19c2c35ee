"""One router per bounded context, each a thin layer over the application
services the CLI calls; `all_routers` lists them for the application factory."""

from __future__ import annotations

from fastapi import APIRouter


def all_routers() -> list[APIRouter]:
    from entrypoints.http.routers import (
        accounts,
        audit,
        bill_groups,
        billing,
        documents,
        invoices,
        receivables,
        reference,
        runs,
    )

    return [
        accounts.router,
        billing.router,
        bill_groups.router,
        receivables.router,
        reference.router,
        runs.router,
        invoices.router,
        documents.router,
        audit.router,
    ]
