"""Schedules, the scheduler that queues their due runs, and the manager that
executes queued runs under a lease (docs/schedules.md).

- **Scheduler** (`Scheduler.tick`): for every active schedule, each occurrence due
  by now and not yet queued becomes a bill run, id `<schedule>-<occurrence date>`
  (`domain.runs.schedule.run_id_for`). Two schedulers queueing the same occurrence
  build the same run id; the event store keeps the first and refuses the second
  (`RecordConflictError`), so an occurrence yields exactly one run.
- **Queue**: a run that is scheduled (not started) or running (not completed) is
  queued, whoever scheduled it; a disabled run is skipped.
- **Manager** (`Manager.tick`): claims the oldest queued run that is enabled and
  not leased by another live holder (`RunLeased` on the run: two managers
  claiming at once conflict on the run's version and one wins), executes it with
  `BillRunExecutor`, renewing the lease at the executor's checkpoints when half of
  it has gone. A crashed manager's lease expires and any manager resumes the run
  from its last checkpoint. The worker's manager has a `BatchDispatch`: the run's
  billing batches go to the deployment's workers, which commit them in the run's
  order (application/runs/dispatch.py); the manager keeps the lease and does the
  rest of the run as before.

Both discover schedules and runs by walking their creation events through the
log with a cursor (one scan when the process starts, then only new events), and
both read time from a clock (the application's, or the tests').
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import RecordConflictError

from application.runs.executor import BillRunExecutor
from application.runs.scheduling import check_selection, schedule_run
from application.shared.app import Billing
from application.shared.clock import Clock
from application.shared.errors import ApplicationError, RunNotFound
from application.shared.retrying import SAVE_ATTEMPTS, save_retrying
from domain.runs.bill_run import BillRun
from domain.runs.events import RunScheduled, ScheduleAdded
from domain.runs.schedule import Schedule, occurrences, period_for, run_id_for
from domain.runs.schedule_terms import ScheduleTerms
from domain.runs.settings import RunOrigin, RunStatus
from domain.shared.errors import DomainError, RunAlreadyScheduled
from domain.shared.ids import run_uuid as uuid_of_run
from domain.shared.ids import schedule_uuid
from domain.shared.periods import Period
from infrastructure.topics import topic_of

if TYPE_CHECKING:
    from application.runs.dispatch import BatchDispatch

log = logging.getLogger(__name__)

SCHEDULE_ADDED = topic_of(ScheduleAdded)
RUN_SCHEDULED = topic_of(RunScheduled)

DEFAULT_LEASE = timedelta(seconds=60)
DISCOVERY_PAGE = 1000


class ScheduleNotFound(ApplicationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule {name!r}; see 'billrun schedule list'")
        self.name = name


# Schedules --------------------------------------------------------------------


@dataclass(frozen=True)
class AddOutcome:
    schedule: Schedule
    created: bool


def get_schedule(billing: Billing, name: str) -> Schedule:
    try:
        schedule: Schedule = billing.repository.get(
            schedule_uuid(name), projector_func=Schedule.project
        )
        return schedule
    except AggregateNotFoundError:
        raise ScheduleNotFound(name) from None


def add_schedule(billing: Billing, name: str, terms: ScheduleTerms) -> AddOutcome:
    """Add a schedule; the same name and terms again change nothing. Its selection
    is checked as `billrun run schedule` checks a run's."""
    check_selection(billing, terms.selection)
    for _ in range(SAVE_ATTEMPTS):
        try:
            schedule = get_schedule(billing, name)
        except ScheduleNotFound:
            schedule = Schedule.create(name)
        if not schedule.add(terms, billing.clock()):
            return AddOutcome(schedule, created=False)
        try:
            billing.save(schedule)
        except RecordConflictError:
            continue  # added elsewhere at the same moment: judge its terms
        return AddOutcome(schedule, created=True)
    raise RecordConflictError(f"schedule {name!r} kept changing while it was being added")


def remove_schedule(billing: Billing, name: str) -> Schedule:
    """Stop queueing the schedule's occurrences (runs already queued stay queued)."""

    def remove() -> Schedule:
        schedule = get_schedule(billing, name)
        schedule.remove(billing.clock())
        return schedule

    return save_retrying(
        billing, remove, f"schedule {name!r} kept changing while it was being removed"
    )


def list_schedules(billing: Billing, include_removed: bool = False) -> list[Schedule]:
    """Every schedule, by name."""
    found = billing.load_many(Schedule, billing.queries.originators(SCHEDULE_ADDED)).values()
    return sorted(
        (s for s in found if include_removed or s.is_active), key=lambda schedule: schedule.name
    )


def first_due(billing: Billing, schedule: Schedule, now: datetime) -> datetime | None:
    """The oldest occurrence due by `now` whose run is not queued yet (the next
    scheduler pass queues it), or None: what `schedule list` shows before the
    future occurrences, so a due one-off does not read as having nothing next."""
    if not schedule.is_active or schedule.terms is None:
        return None
    terms = schedule.terms
    due = list(occurrences(terms, None, now))
    if not due:
        return None
    queued = billing.load_many(
        BillRun, [uuid_of_run(run_id_for(schedule.name, terms, occurrence)) for occurrence in due]
    )
    return next(
        (
            occurrence
            for occurrence in due
            if uuid_of_run(run_id_for(schedule.name, terms, occurrence)) not in queued
        ),
        None,
    )


def set_run_disabled(billing: Billing, run_id: str, disabled: bool) -> tuple[BillRun, bool]:
    """Disable or enable a run; returns the run and whether anything changed.

    A manager renewing its lease may write to the run at the same moment: the
    command then reloads and decides again."""
    for _ in range(SAVE_ATTEMPTS):
        run = billing.get_run(run_id)
        at = billing.clock()
        changed = run.disable(at) if disabled else run.enable(at)
        if not changed:
            return run, False
        try:
            billing.save(run)
        except RecordConflictError:
            continue
        return run, True
    raise RecordConflictError(f"run {run_id} kept changing; try again")


def resume_failed_run(billing: Billing, run_id: str) -> BillRun:
    """Put a failed run back in the managers' queue (after the fix); it goes on
    from its last checkpoint. Refused when the run has not failed."""

    def resume() -> BillRun:
        run = billing.get_run(run_id)
        run.resume(billing.clock())
        return run

    return save_retrying(billing, resume, f"run {run_id} kept changing; try again")


# The scheduler ----------------------------------------------------------------


@dataclass(frozen=True)
class Queued:
    """A run a scheduler queued for a schedule occurrence."""

    run_id: str
    schedule: str
    occurrence: datetime
    period: Period


class _Discovery:
    """The originators of one event topic, in log order, learnt incrementally."""

    def __init__(self, billing: Billing, topic: str) -> None:
        self.billing = billing
        self.topic = topic
        self.cursor = 0

    def new(self) -> list[UUID]:
        head = self.billing.queries.head()
        found: list[UUID] = []
        while True:
            page = self.billing.queries.positions(
                self.topic, after=self.cursor, upto=head, limit=DISCOVERY_PAGE
            )
            found.extend(p.originator_id for p in page)
            if len(page) < DISCOVERY_PAGE:
                self.cursor = head
                return found
            self.cursor = page[-1].notification_id


class Scheduler:
    """Queues the due occurrences of every schedule as bill runs."""

    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        self._schedules = _Discovery(billing, SCHEDULE_ADDED)
        self._ids: dict[UUID, None] = {}
        self._done: dict[UUID, datetime] = {}
        """Per schedule, the last occurrence known to be queued (by anyone)."""

    def tick(self, now: datetime | None = None) -> list[Queued]:
        """Queue every occurrence due by `now` that has no run yet; returns the runs
        this scheduler created (another one may have created the others)."""
        now = now or self.billing.clock()
        self._ids.update(dict.fromkeys(self._schedules.new()))
        schedules = self.billing.load_many(Schedule, list(self._ids))
        queued: list[Queued] = []
        for schedule_id in list(self._ids):
            schedule = schedules.get(schedule_id)
            if schedule is None:
                continue
            if schedule.removed_at is not None:  # for good: names are never reused
                del self._ids[schedule_id]
                continue
            if not schedule.is_active:
                continue
            terms = schedule.active_terms
            for occurrence in occurrences(terms, self._done.get(schedule_id), now):
                try:
                    created = self._queue(schedule.name, terms, occurrence)
                except (ApplicationError, DomainError) as error:
                    # Retried on the next tick; later occurrences wait, so they
                    # are queued in order.
                    log.warning(
                        "schedule %s: the occurrence at %s is not queued: %s",
                        schedule.name, occurrence.isoformat(), error,
                    )  # fmt: skip
                    break
                self._done[schedule_id] = occurrence
                if created is not None:
                    log.info("schedule %s: queued run %s", schedule.name, created.run_id)
                    queued.append(created)
        return queued

    def _queue(self, name: str, terms: ScheduleTerms, occurrence: datetime) -> Queued | None:
        run_id = run_id_for(name, terms, occurrence)
        origin = RunOrigin(schedule=name, occurrence=occurrence)
        existing = self._first_version(run_id)
        if existing is None:
            period = period_for(terms, occurrence)
            try:
                # Race-safe: a second scheduler queueing the same occurrence finds the
                # same run id taken with the same terms, and queues nothing.
                outcome = schedule_run(
                    self.billing, run_id, period, None, terms.selection, terms.settings, origin
                )
            except RunAlreadyScheduled:
                existing = self._first_version(run_id)
            else:
                if outcome.created:
                    return Queued(run_id, name, occurrence, period)
                existing = outcome.run
        if existing is not None and existing.origin != origin:
            log.warning(
                "schedule %s: run id %s is taken by a run it did not queue; the occurrence at "
                "%s is skipped",
                name, run_id, occurrence.isoformat(),
            )  # fmt: skip
        return None

    def _first_version(self, run_id: str) -> BillRun | None:
        """The run as it was scheduled (its first event only: cheap), or None."""
        try:
            return self.billing.get_run(run_id, version=1)
        except RunNotFound:
            return None


# The manager ------------------------------------------------------------------


def default_holder() -> str:
    """This process, as a lease holder: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Managed:
    """What a manager did with the run it claimed.

    `outcome`: `completed`; `failed` (refused or broken: `detail` says why; the
    lease is kept until it expires, so no manager retries before then);
    `stopped` (the manager is stopping: lease released); `disabled` (disabled
    while executing: lease released); `lease_lost` (another manager took the run
    over after this one's lease expired); `interrupted` (the run changed while
    the lease was renewed: claimed again on the next tick)."""

    run_id: str
    outcome: str
    detail: str = ""
    batches: int = 0


class _Interrupted(Exception):
    """Stops an execution at a checkpoint (not an error: a decision)."""

    def __init__(self, outcome: str, detail: str, release: bool) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.release = release


class Manager:
    """Picks queued runs and executes them, one at a time, under a lease."""

    def __init__(
        self,
        billing: Billing,
        holder: str | None = None,
        batch_size: int = 1000,
        lease: timedelta = DEFAULT_LEASE,
        clock: Clock | None = None,
        dispatch: BatchDispatch | None = None,
    ) -> None:
        self.billing = billing
        self.dispatch = dispatch
        """Where a claimed run's billing batches go to be billed by `billrun worker`s
        (None: billed here). The lease stays this manager's: it follows the run,
        renews the lease at the workers' checkpoints, closes and collects itself."""
        self.holder = holder or default_holder()
        self.batch_size = batch_size
        self.lease = lease
        self.clock = clock or billing.clock
        self._runs = _Discovery(billing, RUN_SCHEDULED)
        self._queue: dict[UUID, None] = {}
        """Runs not known to be completed, in the order they were scheduled."""
        self._backoff: dict[UUID, datetime] = {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Stop at the next checkpoint of the run in hand (thread-safe)."""
        self._stopping.set()
        if self.dispatch is not None:
            self.dispatch.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def tick(self, now: datetime | None = None) -> Managed | None:
        """Claim and execute one queued run; None: nothing to do."""
        if self.stopping:
            return None
        run = self._claim(now or self.clock())
        if run is None:
            return None
        return self._execute(run)

    def _claim(self, now: datetime) -> BillRun | None:
        self._queue.update(dict.fromkeys(self._runs.new()))
        runs = self.billing.load_many(BillRun, list(self._queue))
        for run_uuid in list(self._queue):
            run = runs.get(run_uuid)
            if run is None:
                continue
            if run.status is RunStatus.FAILED:
                continue  # until an operator resumes it (`billrun run resume`)
            if not run.is_queued:  # completed (or cancelled): never again
                del self._queue[run_uuid]
                continue
            if run.disabled or self._backoff.get(run_uuid, now) > now:
                continue
            if run.lease_is_live(now) and run.lease_holder != self.holder:
                continue
            run.lease(self.holder, now, now + self.lease)
            try:
                self.billing.save(run)
            except RecordConflictError:
                continue  # another manager claimed it first, or the run moved on
            log.info("manager %s: claimed run %s", self.holder, run.run_id)
            return run
        return None

    def _execute(self, run: BillRun) -> Managed:
        executor = BillRunExecutor(
            self.billing, self.batch_size, on_checkpoint=self._checkpoint, dispatch=self.dispatch
        )
        try:
            execution = executor.execute_run(run)  # as claimed: not read again
        except _Interrupted as stop:
            log.info("manager %s: run %s %s: %s", self.holder, run.run_id, stop.outcome, stop)
            if stop.release:
                self._release(run.run_id)
            return Managed(run.run_id, stop.outcome, str(stop))
        except (ApplicationError, DomainError) as error:
            # A refusal (missing rates, failed checks, a misconfiguration) needs an
            # operator: the run fails with the reason, and managers leave it alone
            # until it is resumed.
            log.warning("manager %s: run %s failed: %s", self.holder, run.run_id, error)
            self._fail(run.run_id, str(error))
            return Managed(run.run_id, "failed", str(error))
        except Exception as error:
            # A breakage (the database went away, ...) may pass: the lease stays
            # until it expires, so the run is retried then, not in a loop.
            log.exception("manager %s: run %s broke", self.holder, run.run_id)
            self._backoff[run.id] = self.clock() + self.lease
            return Managed(run.run_id, "broken", str(error) or type(error).__name__)
        log.info("manager %s: run %s completed", self.holder, run.run_id)
        return Managed(run.run_id, "completed", batches=execution.batches_committed)

    def _checkpoint(self, run: BillRun) -> None:
        """After each checkpoint of the run in hand: stop if asked to, if the run was
        disabled or taken over; renew the lease once half of it has gone."""
        if self.stopping:
            raise _Interrupted("stopped", "the manager is stopping", release=True)
        if run.disabled:
            raise _Interrupted("disabled", "the run was disabled", release=True)
        if run.lease_holder != self.holder:
            raise _Interrupted("lease_lost", f"now leased by {run.lease_holder}", release=False)
        now = self.clock()
        expires = run.lease_expires_at
        if expires is not None and expires - now > self.lease / 2:
            return
        run.lease(self.holder, now, now + self.lease)
        try:
            self.billing.save(run)
        except RecordConflictError:
            # The executor's run is now ahead of the store: stop this execution
            # (the next tick claims the run again if it is still ours to run).
            raise _Interrupted(
                "interrupted", "the run changed while its lease was renewed", release=False
            ) from None

    def _fail(self, run_id: str, reason: str) -> None:
        for _ in range(SAVE_ATTEMPTS):
            run = self.billing.get_run(run_id)
            if not run.is_queued:
                return
            run.fail(reason, self.clock())
            try:
                self.billing.save(run)
            except RecordConflictError:
                continue
            return

    def _release(self, run_id: str) -> None:
        for _ in range(SAVE_ATTEMPTS):
            run = self.billing.get_run(run_id)
            if not run.release(self.holder, self.clock()):
                return
            try:
                self.billing.save(run)
            except RecordConflictError:
                continue
            return


# Both, as `billrun scheduler` and the worker run them -------------------------


@dataclass(frozen=True)
class Pass:
    queued: list[Queued] = field(default_factory=list)
    managed: list[Managed] = field(default_factory=list)


class Scheduling:
    """A scheduler and a manager: each pass queues what is due, then executes
    queued runs until none is left to claim (or it is told to stop)."""

    def __init__(self, manager: Manager) -> None:
        self.scheduler = Scheduler(manager.billing)
        self.manager = manager

    def stop(self) -> None:
        self.manager.stop()

    def run_once(self) -> Pass:
        queued = self.scheduler.tick()
        managed: list[Managed] = []
        while (outcome := self.manager.tick()) is not None:
            managed.append(outcome)
        return Pass(queued, managed)
