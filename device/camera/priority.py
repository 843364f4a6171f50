"""The camera loop's priority over API requests.

Cameras cannot wait: a frame not processed in time is a frame dropped. The API can: a client retries a 503.
So the cameras report here when they work and when they fall behind, and the API's inference pool asks
`api_should_wait()` before it takes a request: while any camera is behind (it dropped a frame within the last
BEHIND_S seconds), the API answers 503 with Retry-After instead of taking CPU from the cameras.
`camera_busy` is true while a camera is processing a frame (for pools that prefer to wait briefly instead).
"""
from __future__ import annotations

import threading
import time

BEHIND_S = 2.0


class Priority:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._lock = threading.Lock()
        self._working = 0
        self._behind_until = 0.0

    def working(self) -> "_Working":
        """`with priority.working():` around a camera's processing of one frame."""
        return _Working(self)

    def dropped(self) -> None:
        """A camera dropped a frame: it is behind."""
        with self._lock:
            self._behind_until = self.clock() + BEHIND_S

    @property
    def camera_busy(self) -> bool:
        return self._working > 0

    @property
    def cameras_behind(self) -> bool:
        return self.clock() < self._behind_until

    def api_should_wait(self) -> bool:
        """True while the cameras need the CPU: the API should answer 503 (Retry-After: retry_after_s())."""
        return self.cameras_behind

    def retry_after_s(self) -> int:
        return max(1, int(round(self._behind_until - self.clock())))


class _Working:
    def __init__(self, priority: Priority):
        self.priority = priority

    def __enter__(self):
        with self.priority._lock:
            self.priority._working += 1

    def __exit__(self, *exc):
        with self.priority._lock:
            self.priority._working -= 1
