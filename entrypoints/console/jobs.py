"""Long actions started from the console (execute a run, generate its documents,
rebuild a read model) run in a thread of the server; pages poll their progress.

A job is keyed by what it works on (tenant, kind, subject): starting one that is
already running does nothing, so a double click never starts a second. The
work itself stays safe to repeat and to race (an executor resumes after its
last batch; documents already rendered are not rendered again), so a job lost
with the server is simply started again.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from entrypoints.http.problems import problem_of

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""`update(done, total)`."""


@dataclass
class Job:
    kind: str
    subject: str
    started: float = field(default_factory=time.time)
    done: int = 0
    total: int = 0
    finished: bool = False
    error: str | None = None
    summary: str | None = None

    @property
    def running(self) -> bool:
        return not self.finished

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str, str], Job] = {}
        self._lock = threading.Lock()

    def start(
        self, tenant: str, kind: str, subject: str, work: Callable[[Progress], str | None]
    ) -> Job:
        """Run `work(update)` in a thread (in the caller's context: its actor) unless
        the same job is running; `work` returns a one-line summary."""
        key = (tenant, kind, subject)
        with self._lock:
            running = self._jobs.get(key)
            if running is not None and running.running:
                return running
            job = self._jobs[key] = Job(kind, subject)
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(self._run, job, work), daemon=True, name=f"{kind} {subject}"
        )
        thread.start()
        return job

    def of(self, tenant: str, kind: str, subject: str) -> Job | None:
        with self._lock:
            return self._jobs.get((tenant, kind, subject))

    def _run(self, job: Job, work: Callable[[Progress], str | None]) -> None:
        def update(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.summary = work(update)
        except Exception as error:  # shown on the page; the work wrote nothing it did not finish
            job.error = problem_of(error).detail
            log.warning("%s %s failed: %s", job.kind, job.subject, job.error)
        finally:
            job.finished = True
