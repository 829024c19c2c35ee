"""`billrun run process R`: move a run to its next workflow state (Opencell's
scheduled -> running -> drafts ready -> validated -> completed).

- scheduled, running or failed: execute (or resume) it: billing closes its
  invoices as drafts, the run is then *drafts ready*;
- drafts ready: validate it: every draft invoice of the run is approved, in one
  transaction with `RunValidated`; refused while any is quarantined (review those
  first: release, reject or cancel them);
- validated: complete it for good (`RunFinalized`): it can no longer be cancelled;
- completed or cancelled: nothing to do (refused).

`describe_run` changes the one thing the seed lets an operator change after a
run is created: its description (the CLI, the API and the console all call it).
"""

from __future__ import annotations

from application.runs.executor import BillRunExecutor
from application.shared.app import Billing
from application.shared.errors import ApplicationError, InvalidInput, Problem
from application.shared.retrying import save_retrying
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.runs.bill_run import BillRun
from domain.runs.settings import WorkflowState
from infrastructure.topics import topic_of


class RunNotProcessable(ApplicationError):
    pass


DESCRIPTION_LIMIT = 500
"""Characters in a run's description: a sentence or two for the operators, not a
document (it is shown on the run's page and in every status)."""


def describe_run(billing: Billing, run_id: str, description: str) -> tuple[BillRun, bool]:
    """Set the run's description; returns the run and whether it changed (the same
    text again writes nothing). Retried from a fresh load while a manager writes
    its lease to the run at the same moment."""
    text = description.strip()
    if len(text) > DESCRIPTION_LIMIT:
        problem = Problem("description", f"at most {DESCRIPTION_LIMIT} characters, not {len(text)}")
        raise InvalidInput(f"run {run_id}", [problem])
    changed = False

    def load_and_describe() -> BillRun:
        nonlocal changed
        run = billing.get_run(run_id)
        run.describe(text, billing.clock())
        changed = run.has_pending_events
        return run

    run = save_retrying(billing, load_and_describe, f"run {run_id} kept changing; try again")
    return run, changed


def process_run(billing: Billing, run_id: str, batch_size: int) -> WorkflowState:
    """Move the run one state on; returns the state it is in afterwards."""
    run = billing.get_run(run_id)
    state = run.workflow_state
    at = billing.clock()
    if state in (WorkflowState.SCHEDULED, WorkflowState.RUNNING, WorkflowState.FAILED):
        BillRunExecutor(billing, batch_size).execute_run(run)
    elif state is WorkflowState.DRAFTS_READY:
        ids = billing.queries.originators_with([topic_of(InvoiceOpened)], "run_id", run_id)
        invoices = billing.load_many(Invoice, ids).values()
        quarantined = sorted(
            i.name for i in invoices if i.review_status is ReviewStatus.QUARANTINED
        )
        if quarantined:
            raise RunNotProcessable(
                f"run {run_id} has quarantined invoices ({', '.join(quarantined)}): release, "
                "reject or cancel them before validating the run"
            )
        drafts = [i for i in invoices if i.review_status is ReviewStatus.DRAFT]
        for invoice in drafts:
            invoice.approve(at, reason=f"run {run_id} validated")
        run.validate(len(drafts), at)
        billing.save(*drafts, run)
    elif state is WorkflowState.VALIDATED:
        run.finalize(at)
        billing.save(run)
    else:
        raise RunNotProcessable(f"run {run_id} is {state.value}: there is no next state")
    return billing.get_run(run_id).workflow_state
