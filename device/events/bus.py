"""In-process feed of new events for GET /events/stream: each subscriber gets a bounded queue of its own; a
subscriber that does not keep up loses its oldest events (and sees a gap in seq), never slows the cameras."""
from __future__ import annotations

import queue
import threading

SUBSCRIBER_QUEUE = 256


class EventBus:
    def __init__(self, max_subscribers: int = 16):
        self.max_subscribers = max_subscribers
        self._subscribers: list[queue.Queue] = []
        self._lock = threading.Lock()

    def subscribe(self) -> queue.Queue | None:
        """A new queue of events, or None when max_subscribers are already listening."""
        with self._lock:
            if len(self._subscribers) >= self.max_subscribers:
                return None
            feed: queue.Queue = queue.Queue(SUBSCRIBER_QUEUE)
            self._subscribers.append(feed)
            return feed

    def unsubscribe(self, feed: queue.Queue) -> None:
        with self._lock:
            if feed in self._subscribers:
                self._subscribers.remove(feed)

    def publish(self, event: dict | None) -> None:
        """Hand `event` to every subscriber (None tells them the daemon is stopping)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for feed in subscribers:
            while True:
                try:
                    feed.put_nowait(event)
                    break
                except queue.Full:
                    try:
                        feed.get_nowait()
                    except queue.Empty:
                        pass
