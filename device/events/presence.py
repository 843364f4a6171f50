"""Person presence: retained `person/<person_id>/state` = present | absent.

A person turns `present` when a camera recognises them and `absent` once `events.absence_timeout_s` has passed
since the last of their tracks left (on any camera). At start-up nobody is being tracked, so persons whose last
published state is `present` turn `absent` after the same timeout unless a camera sees them first.
"""
from __future__ import annotations

import threading
import time

from .outbox import Outbox, utc_iso


class Presence:
    def __init__(self, outbox: Outbox, absence_timeout_s: float, clock=time.time):
        self.outbox = outbox
        self.timeout = absence_timeout_s
        self.clock = clock
        self._lock = threading.Lock()
        self._tracks: dict[str, int] = {}  # person id -> tracks that show them now
        self._absent_at: dict[str, float] = {}  # person id -> when they turn absent (no track left)
        now = clock()
        for person_id, state in outbox.states().items():
            if state == "present":
                self._absent_at[person_id] = now + self.timeout

    def arrived(self, person_id: str, camera: str, ts: float) -> None:
        with self._lock:
            self._tracks[person_id] = self._tracks.get(person_id, 0) + 1
            was_present = person_id in self._absent_at or self._tracks[person_id] > 1
            self._absent_at.pop(person_id, None)
        if not was_present:
            self.outbox.set_state(person_id, "present", camera, utc_iso(ts))

    def left(self, person_id: str, ts: float) -> None:
        with self._lock:
            count = self._tracks.get(person_id, 0) - 1
            if count > 0:
                self._tracks[person_id] = count
                return
            self._tracks.pop(person_id, None)
            self._absent_at[person_id] = max(ts, self.clock()) + self.timeout

    def tick(self) -> None:
        """Publish `absent` for everyone whose timeout has passed (the service calls this every second)."""
        now = self.clock()
        with self._lock:
            due = [p for p, at in self._absent_at.items() if at <= now]
            for person_id in due:
                del self._absent_at[person_id]
        for person_id in due:
            self.outbox.set_state(person_id, "absent", None, utc_iso(now))

    def present(self) -> list[str]:
        with self._lock:
            return sorted(set(self._tracks) | set(self._absent_at))
