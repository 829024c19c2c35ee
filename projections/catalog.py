"""The read models billrun maintains, how reads find their active version, and
how an operator sees their state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from application.shared.app import Billing
from projections.audit_seal import AuditSealView
from projections.invoices import InvoicesProjection, InvoicesView
from projections.receivables import ReceivablesProjection, ReceivablesView
from projections.registry import ProjectionRegistry
from projections.run_report import RunReportProjection, RunReportView
from projections.runs import RunStatusProjection, RunStatusView
from projections.view import View, catch_up, open_view, suffix_version

TView = TypeVar("TView", bound=View)


@dataclass(frozen=True)
class ReadModel:
    view_class: type[View]
    topics: tuple[str, ...]
    rebuildable: bool = True


READ_MODELS: dict[str, ReadModel] = {
    "invoices": ReadModel(InvoicesView, InvoicesProjection.topics),
    "runs": ReadModel(RunStatusView, RunStatusProjection.topics),
    "run_report": ReadModel(RunReportView, RunReportProjection.topics),
    "receivables": ReadModel(ReceivablesView, ReceivablesProjection.topics),
    # Never rebuilt: a rebuild would seal whatever the log holds now, tampering included.
    "audit_seal": ReadModel(AuditSealView, (), rebuildable=False),
}


@dataclass(frozen=True)
class ProjectionState:
    name: str
    code_version: int
    active: str
    active_version: int
    building: str | None
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    @property
    def needs_rebuild(self) -> bool:
        return self.active_version != self.code_version

    @property
    def state(self) -> str:
        if self.building:
            return f"rebuilding into {self.building}"
        if self.needs_rebuild:
            return "needs rebuild"
        # "current" beside a lag read as a contradiction: a view is current only at
        # the head; behind it, the next read catches it up before answering.
        return "current" if self.lag == 0 else "behind (caught up on the next read)"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "code_version": self.code_version,
            "active": self.active,
            "active_version": self.active_version,
            "state": self.state,
            "needs_rebuild": self.needs_rebuild,
            "building": self.building,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
        }


class ReadSide:
    """The views of one process, each opened at its active version.

    `fresh(...)` catches a view up before a read, so a read reflects the writes it
    follows; a view whose active version is older than the code is served as it
    is, not written by code it was not built for, and a warning says so.
    """

    def __init__(self, app: Billing, env: dict[str, str]) -> None:
        self.app = app
        self.env = env
        self.registry = ProjectionRegistry(app.recorder.datastore)  # type: ignore[attr-defined]
        self._views: dict[str, View] = {}
        self.warnings: list[str] = []

    def view(self, name: str) -> View:
        if name not in self._views:
            model = READ_MODELS[name]
            active = self.registry.get(name, model.view_class.version).active
            self._views[name] = open_view(model.view_class, self.env, active)
        return self._views[name]

    def forget(self, name: str) -> None:
        """Reopen `name` at its (new) active version on next use."""
        view = self._views.pop(name, None)
        if view is not None:
            view.datastore.close()

    def fresh(
        self,
        name: str,
        view_class: type[TView],
        on_progress: Callable[[int, int], None] | None = None,
    ) -> TView:
        view = self.view(name)
        assert isinstance(view, view_class)
        if view.built_version != view_class.version:
            lag = self.app.queries.head() - (view.max_tracking_id(self.app.name) or 0)
            self.warnings.append(
                f"the {name} read model is version {view.built_version} but this code is "
                f"version {view_class.version}: it is served as it was, {lag} events behind; "
                f"run `billrun projections rebuild {name}`"
            )
        else:
            catch_up(self.app, view, READ_MODELS[name].topics, on_progress=on_progress)
        return view

    def fresh_invoices(self) -> InvoicesView:
        return self.fresh("invoices", InvoicesView)

    def fresh_runs(self) -> RunStatusView:
        return self.fresh("runs", RunStatusView)

    def fresh_run_report(self) -> RunReportView:
        return self.fresh("run_report", RunReportView)

    def fresh_receivables(self) -> ReceivablesView:
        return self.fresh("receivables", ReceivablesView)

    def audit_seal(self) -> AuditSealView:
        view = self.view("audit_seal")
        assert isinstance(view, AuditSealView)
        return view

    def states(self) -> list[ProjectionState]:
        head = self.app.queries.head()
        states = []
        for name, model in READ_MODELS.items():
            registration = self.registry.get(name, model.view_class.version)
            view = self.view(name)
            states.append(
                ProjectionState(
                    name=name,
                    code_version=model.view_class.version,
                    active=registration.active,
                    active_version=suffix_version(registration.active),
                    building=registration.building,
                    position=view.max_tracking_id(self.app.name) or 0,
                    head=head,
                )
            )
        return states

    def close(self) -> None:
        for view in self._views.values():
            view.datastore.close()
