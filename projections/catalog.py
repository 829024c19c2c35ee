"""The read models billrun maintains, and opening them against one database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from application.billing import Billing
from projections.invoices import InvoicesProjection, InvoicesView
from projections.runs import RunStatusProjection, RunStatusView
from projections.view import View, ViewProjection, catch_up, open_view


@dataclass(frozen=True)
class ReadModel:
    view_class: type[View]
    projection_class: type[ViewProjection]


READ_MODELS = {
    "invoices": ReadModel(InvoicesView, InvoicesProjection),
    "runs": ReadModel(RunStatusView, RunStatusProjection),
}


class ReadSide:
    """The views, opened once per process; `fresh()` catches a view up before a read."""

    def __init__(self, app: Billing, env: dict[str, str]) -> None:
        self.app = app
        self.invoices = open_view(InvoicesView, env)
        self.runs = open_view(RunStatusView, env)

    def fresh_invoices(self, on_progress: Callable[[int, int], None] | None = None) -> InvoicesView:
        catch_up(self.app, self.invoices, InvoicesProjection.topics, on_progress=on_progress)
        assert isinstance(self.invoices, InvoicesView)
        return self.invoices

    def fresh_runs(self) -> RunStatusView:
        catch_up(self.app, self.runs, RunStatusProjection.topics)
        assert isinstance(self.runs, RunStatusView)
        return self.runs

    def close(self) -> None:
        self.invoices.datastore.close()
        self.runs.datastore.close()
