"""The bounded inference pool: at most `workers` requests run at once and at most `queue` wait; beyond that
the caller is told to come back later (Busy, 503 with Retry-After) instead of queueing without bound.

Admission happens before a request's body is read (`admit`), so the pool also bounds how many request
bodies and decoded images are in memory at once. Work runs on the pool's own threads, so a request can stop
waiting after its timeout; work that has not started by then is dropped, work that has started finishes and
keeps its slot until it does (the bound stays honest).

Priority. `admit(priority=True)` is for the camera loop (a later issue): it is never refused for a full queue
(its caller bounds itself, one frame at a time per camera), and its work is taken before every waiting API
request. `reserved` of the workers only ever run priority work, so a busy API cannot starve the camera; it
is 0 until a camera exists.
"""
from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from typing import Any, Callable

from ..errors import Busy
from ..vision.runtime import release_memory

PRIORITY, NORMAL = 0, 1


class _Job:
    __slots__ = ("fn", "done", "result", "error", "cancelled", "started")

    def __init__(self, fn: Callable[[], Any]):
        self.fn = fn
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.started = False


class Ticket:
    """A place in the pool, held from admission until its work has finished (or it is given back unused)."""

    def __init__(self, pool: "InferencePool", priority: bool):
        self.pool = pool
        self.priority = priority
        self.admitted = time.monotonic()
        self._released = False
        self._submitted = False

    def run(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run `fn` on a worker and return its result (or raise its error); Busy(TIMEOUT) after `timeout`
        seconds counted from admission."""
        job = _Job(fn)
        self.pool._put(self, job)
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - self.admitted))
        if not job.done.wait(remaining):
            with self.pool._lock:
                if not job.started:
                    job.cancelled = True  # the worker drops it and gives the slot back
            raise Busy(f"the request did not finish within {timeout:g} s (api.timeout_s)", "TIMEOUT",
                       retry_after=self.pool.retry_after())
        if job.error is not None:
            raise job.error
        return job.result

    def release(self) -> None:
        """Give back a ticket whose work never ran (an error before `run`)."""
        self.pool._release(self)

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        if not self._submitted:
            self.release()


class InferencePool:
    def __init__(self, workers: int, queue: int, reserved: int = 0, name: str = "faced-inference"):
        if workers < 1 or reserved >= workers + 1 or queue < 0:
            raise ValueError("workers >= 1, queue >= 0, reserved <= workers")
        self.workers, self.queue, self.reserved = workers, queue, reserved
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list = []
        self._order = itertools.count()
        self._admitted = 0  # tickets held: waiting for a body, queued or running
        self._running = 0
        self._latency = 0.5  # seconds, moving average of a job's run time (for Retry-After)
        self.rejected = 0
        self._stopping = False
        self._threads = [threading.Thread(target=self._worker, args=(i < reserved,), name=f"{name}-{i}",
                                          daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    # ----------------------------------------------------------------------------------------- admission
    @property
    def capacity(self) -> int:
        """API requests admitted at once: those running plus those waiting."""
        return self.workers - self.reserved + self.queue

    def admit(self, priority: bool = False) -> Ticket:
        with self._lock:
            if not priority and self._admitted >= self.capacity:
                self.rejected += 1
                raise Busy(f"the inference pool is full ({self.workers - self.reserved} running, {self.queue} "
                           "waiting): retry later", "BUSY", retry_after=self._retry_after())
            self._admitted += 1
        return Ticket(self, priority)

    def depth(self) -> int:
        """Requests admitted and not finished (waiting or running)."""
        with self._lock:
            return self._admitted

    def running(self) -> int:
        with self._lock:
            return self._running

    def retry_after(self) -> int:
        with self._lock:
            return self._retry_after()

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: the work ahead, spread over the workers."""
        return max(1, math.ceil(self._latency * max(1, self._admitted) / max(1, self.workers - self.reserved)))

    # ------------------------------------------------------------------------------------------- workers
    def _put(self, ticket: Ticket, job: _Job) -> None:
        ticket._submitted = True
        with self._lock:
            heapq.heappush(self._heap, (PRIORITY if ticket.priority else NORMAL, next(self._order), ticket, job))
            self._wake.notify_all()

    def _release(self, ticket: Ticket) -> None:
        with self._lock:
            if not ticket._released:
                ticket._released = True
                self._admitted -= 1

    def _take(self, reserved_only: bool):
        with self._lock:
            while True:
                if self._stopping:
                    return None
                if self._heap and (not reserved_only or self._heap[0][0] == PRIORITY):
                    _, _, ticket, job = heapq.heappop(self._heap)
                    if job.cancelled:
                        ticket._released or self._release_locked(ticket)
                        continue
                    job.started = True
                    self._running += 1
                    return ticket, job
                self._wake.wait()

    def _release_locked(self, ticket: Ticket) -> None:
        ticket._released = True
        self._admitted -= 1

    def _worker(self, reserved_only: bool) -> None:
        while True:
            taken = self._take(reserved_only)
            if taken is None:
                return
            ticket, job = taken
            started = time.monotonic()
            try:
                job.result = job.fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request thread
                job.error = exc
            elapsed = time.monotonic() - started
            with self._lock:
                self._running -= 1
                self._latency = 0.8 * self._latency + 0.2 * elapsed
                if not ticket._released:
                    self._release_locked(ticket)
                idle = self._running == 0 and not self._heap
            job.done.set()
            if idle:  # a burst is over: hand its freed memory back (a long-running appliance's RSS stays flat)
                release_memory()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
