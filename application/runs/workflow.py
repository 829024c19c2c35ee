"""`billrun run process R`: move a run to its next workflow state (Opencell's
scheduled -> running -> drafts ready -> validated -> completed).

- scheduled, running or failed: execute (or resume) it: billing closes its
  invoices as drafts, the run is then *drafts ready*;
- drafts ready: validate it: every draft invoice of the run is approved, in one
  transaction with `RunValidated`; refused while any is quarantined (review those
  first: release, reject or cancel them);
- validated: complete it for good (`RunFinalized`): it can no longer be cancelled;
- completed or cancelled: nothing to do (refused).
"""

from __future__ import annotations

from application.runs.executor import BillRunExecutor
from application.shared.app import Billing
from application.shared.errors import ApplicationError
from domain.invoicing.events import InvoiceOpened
from domain.invoicing.invoice import Invoice
from domain.invoicing.review import ReviewStatus
from domain.runs.settings import WorkflowState
from infrastructure.topics import topic_of


class RunNotProcessable(ApplicationError):
    pass


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
