"""The job queue behind the API: bounded, one worker, cancellable between steps, batching.

A POST enqueues a :class:`Job` and returns at once. One worker thread runs jobs in order (a CPU
has no spare cores for two). Waiting text-to-image jobs that share model and settings are taken
together and sampled as one batch; every image still comes from its own seeded generator in
fixed-size network chunks, so batching never changes a pixel. Cancellation and the per-job
timeout are checked after every sampler step; a job that raises fails alone with its message,
and the worker goes on.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atelier.diffusion.samplers import StepInfo
from atelier.serve.errors import public_message

PREVIEW_EVERY_S = 0.5
# How often a progress stream looks for news, and the longest it stays silent (a keep-alive).
POLL_S = 0.05
QUIET_S = 15.0


class Cancelled(Exception):
    """Raised inside a job's step callback when every job it serves was cancelled."""


class JobTimeout(Exception):
    """Raised inside a job's step callback when it ran past the per-job time limit."""


@dataclass
class Job:
    """One request's work and state. ``run(jobs, on_step)`` does the work for a batch of jobs
    sharing ``batch_key`` and returns one result per job; it calls ``on_step(info, preview)``
    after every sampler step, ``preview`` a function making a small preview on demand."""

    kind: str
    payload: Any
    run: Callable[[list[Job], Callable[..., None]], list[Any]]
    batch_key: tuple | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    status: str = "queued"
    step: int = 0
    total: int = 0
    result: Any = None
    error: str | None = None
    cancel_requested: bool = False
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    preview: Any = None
    version: int = 0
    _touching: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def touch(self) -> None:
        """Tell everyone watching that this job changed."""
        with self._touching:
            self.version += 1

    async def changed(self, seen: int, *, quiet_s: float = QUIET_S) -> None:
        """Return once the job's version is past ``seen``, it is done, or ``quiet_s`` passed.
        It polls on the event loop instead of waiting on a lock in a thread: a thread per
        watcher would empty the loop's small default pool and stall every other stream."""
        end = time.monotonic() + quiet_s
        while self.version == seen and not self.done and time.monotonic() < end:
            await asyncio.sleep(POLL_S)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in about {retry_after} s")
        self.retry_after = retry_after


class JobQueue:
    """Bounded FIFO of jobs with one worker thread."""

    def __init__(
        self,
        *,
        max_queue: int = 16,
        job_timeout_s: float = 300.0,
        batching: bool = True,
        max_batch: int = 8,
        keep_finished: int = 256,
        previews: bool = True,
    ) -> None:
        self.max_queue, self.job_timeout_s = max_queue, job_timeout_s
        self.batching, self.max_batch = batching, max_batch
        self.previews = previews
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._finished: deque[str] = deque()
        self._keep = keep_finished
        self._lock = threading.Condition()
        self._seconds_per_job = 5.0
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="atelier-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Job:
        with self._lock:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(max(1, round(self._seconds_per_job * (len(self._waiting) + 1))))
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._lock.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        with self._lock:
            for k, waiting in enumerate(self._waiting):
                if waiting is job:
                    return k
        return None

    def cancel(self, job_id: str) -> Job | None:
        """Ask a job to stop: a queued job is dropped now, a running one after its next step."""
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return job
        job.cancel_requested = True
        with self._lock:
            if job in self._waiting:
                self._waiting.remove(job)
                self._finish(job, "cancelled")
        return job

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join(timeout=5)

    def _finish(self, job: Job, status: str, *, result: Any = None, error: str | None = None):
        # The message goes to clients: one line, no absolute path (errors.py).
        job.status, job.result = status, result
        job.error = public_message(error) if error is not None else None
        job.finished = time.monotonic()
        self._finished.append(job.id)
        while len(self._finished) > self._keep:
            self._jobs.pop(self._finished.popleft(), None)
        job.touch()

    def _take(self) -> list[Job] | None:
        with self._lock:
            while not self._waiting and not self._stop:
                self._lock.wait()
            if self._stop:
                return None
            first = self._waiting.popleft()
            batch = [first]
            if self.batching and first.batch_key is not None:
                rows = first.payload.n
                for other in list(self._waiting):
                    if (
                        other.batch_key == first.batch_key
                        and rows + other.payload.n <= self.max_batch
                    ):
                        self._waiting.remove(other)
                        batch.append(other)
                        rows += other.payload.n
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            began = time.monotonic()
            for job in batch:
                job.status, job.started = "running", began
                job.touch()

            last_preview = [-1.0]

            def on_step(
                info: StepInfo, preview=None, batch=batch, began=began, last_preview=last_preview
            ) -> None:
                now = time.monotonic()
                if all(j.cancel_requested for j in batch):
                    raise Cancelled()
                if now - began > self.job_timeout_s:
                    raise JobTimeout()
                # Previews cost a decode: at most one per PREVIEW_EVERY_S, and the last step's.
                fresh = None
                due = now - last_preview[0] >= PREVIEW_EVERY_S or info.i + 1 == info.total
                if preview is not None and self.previews and due:
                    fresh, last_preview[0] = preview(), now
                for j in batch:
                    j.step, j.total = info.i + 1, info.total
                    j.preview = fresh if fresh is not None else j.preview
                    j.touch()

            try:
                results = batch[0].run(batch, on_step)
            except Cancelled:
                for job in batch:
                    self._finish(job, "cancelled")
                continue
            except JobTimeout:
                for job in batch:
                    self._finish(job, "failed", error=f"timed out after {self.job_timeout_s:.0f} s")
                continue
            except Exception as err:  # one job's crash must not stop the server
                message = f"{type(err).__name__}: {err}"
                for job in batch:
                    self._finish(job, "failed", error=message)
                continue
            elapsed = time.monotonic() - began
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * elapsed / len(batch)
            for job, result in zip(batch, results):
                self._finish(job, "cancelled" if job.cancel_requested else "done", result=result)
