"""The durable outbox and the event history, in faced's SQLite file (schema step 5).

Every event is written here first, in one transaction that gives it the device's next `seq`, stores it in the
history and queues it for the broker; the publisher removes a queued message only when the broker has
acknowledged it (QoS 1 PUBACK). So a broker outage, a crash or a power cut loses nothing, and delivery resumes
in seq order. Person states (retained `present`/`absent`) travel through the same queue, in order with events.

Bounded: when more than `events.outbox_max` events wait, the oldest waiting events are dropped (their history
rows stay) and `outbox_dropped` counts them; subscribers see the gap in seq. Newest-wins matches the camera
loop's policy: after a long outage the recent events matter most. Erasing a person (schema trigger) removes
their history, their queued messages and their state, and queues the removal of their retained state topic.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import InvalidInput
from ..validation import utc_iso  # noqa: F401 (the events' time format; imported from here by the event modules)

EVENT_TYPES = ("recognized", "unknown", "spoof", "left")
HISTORY_PAGE_MAX = 1000


def parse_since(text: str) -> str:
    """An ISO 8601 time (a date, or a date and time with an optional offset) as the history's UTC form."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"since must be an ISO 8601 time like 2026-11-02T08:00:00Z, got {text!r}",
                           "INVALID_ARGUMENT") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return utc_iso(moment.timestamp())


@dataclass
class Queued:
    id: int
    seq: int | None
    topic: str
    payload: str
    retain: bool


class Outbox:
    """Shared by the camera threads (writers), the publisher and the HTTP handlers; each thread uses its own
    SQLite connection through the store."""

    def __init__(self, store, outbox_max: int, history_days: float, bus=None):
        self.store = store
        self.outbox_max = outbox_max
        self.history_days = history_days
        self.bus = bus
        self.listeners: list = []  # called with no argument after each write (the publisher's wake-up)

    # ------------------------------------------------------------------------------------------ writing
    def record(self, event: dict) -> dict | None:
        """Give `event` its event_id and seq, keep it in the history, queue it; returns the event as published
        (None when it names a person or visitor erased meanwhile)."""
        with self.store.transaction() as connection:
            person_id = event.get("person_id")
            if person_id and not connection.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone():
                return None
            visitor_id = event.get("visitor_id")
            if visitor_id and not connection.execute("SELECT 1 FROM visitors WHERE id = ?",
                                                     (visitor_id,)).fetchone():
                return None
            connection.execute("UPDATE event_counters SET value = value + 1 WHERE name = 'seq'")
            seq = connection.execute("SELECT value FROM event_counters WHERE name = 'seq'").fetchone()[0]
            event = {"event_id": str(uuid.uuid4()), "seq": seq, **event}
            stored = {k: v for k, v in event.items() if k != "thumbnail"}
            if self.history_days > 0:
                connection.execute(
                    "INSERT INTO events(seq, event_id, ts, type, camera, person_id, payload, visitor_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, event["event_id"], event["ts"], event["type"], event["camera"], person_id,
                     _json(stored), event.get("visitor_id")))
            self._queue(connection, seq, "events", _json(event), False, person_id, event.get("visitor_id"))
            self._trim(connection)
        if self.bus is not None:
            self.bus.publish(stored)
        self._wake()
        return event

    def set_state(self, person_id: str, state: str, camera: str | None, ts: str) -> bool:
        """Queue the retained `person/<id>/state` message; False when the person no longer exists."""
        with self.store.transaction() as connection:
            if not connection.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone():
                return False
            connection.execute(
                "INSERT INTO person_state(person_id, state, camera, changed) VALUES (?, ?, ?, ?) ON CONFLICT(person_id)"
                " DO UPDATE SET state = excluded.state, camera = excluded.camera, changed = excluded.changed",
                (person_id, state, camera, ts))
            self._queue(connection, None, f"person/{person_id}/state", state, True, person_id)
        self._wake()
        return True

    def states(self) -> dict[str, str]:
        """person id -> the presence last published."""
        return dict(self.store.connection.execute("SELECT person_id, state FROM person_state"))

    def _queue(self, connection, seq, topic, payload, retain, person_id, visitor_id=None) -> None:
        connection.execute(
            "INSERT INTO event_outbox(seq, topic, payload, retain, person_id, created, visitor_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, topic, payload, int(retain), person_id, utc_iso(datetime.now(timezone.utc).timestamp()),
             visitor_id))

    def _trim(self, connection) -> None:
        waiting = connection.execute("SELECT count(*) FROM event_outbox WHERE seq IS NOT NULL").fetchone()[0]
        excess = waiting - self.outbox_max
        if excess > 0:
            connection.execute("DELETE FROM event_outbox WHERE id IN (SELECT id FROM event_outbox WHERE seq IS NOT "
                               "NULL ORDER BY id LIMIT ?)", (excess,))
            connection.execute("UPDATE event_counters SET value = value + ? WHERE name = 'outbox_dropped'", (excess,))

    def _wake(self) -> None:
        for listener in self.listeners:
            listener()

    # ---------------------------------------------------------------------------------------- publishing
    def pending(self, after_id: int = 0, limit: int = 100) -> list[Queued]:
        rows = self.store.connection.execute(
            "SELECT id, seq, topic, payload, retain FROM event_outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit)).fetchall()
        return [Queued(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def acknowledged(self, ids: list[int]) -> None:
        """The broker has these: remove them."""
        if ids:
            with self.store.transaction() as connection:
                connection.executemany("DELETE FROM event_outbox WHERE id = ?", [(i,) for i in ids])

    def depth(self) -> int:
        return self.store.connection.execute("SELECT count(*) FROM event_outbox").fetchone()[0]

    def dropped(self) -> int:
        return self.store.connection.execute(
            "SELECT value FROM event_counters WHERE name = 'outbox_dropped'").fetchone()[0]

    # ------------------------------------------------------------------------------------------ history
    def history(self, camera: str | None = None, person: str | None = None, type_: str | None = None,
                since: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """Stored events, newest first, filtered (camera, person id, type, since an ISO 8601 time)."""
        if type_ is not None and type_ not in EVENT_TYPES:
            raise InvalidInput(f"type must be one of {', '.join(EVENT_TYPES)}, got {type_!r}", "INVALID_ARGUMENT")
        if not 1 <= limit <= HISTORY_PAGE_MAX or offset < 0:
            raise InvalidInput(f"limit must be 1-{HISTORY_PAGE_MAX} and offset >= 0", "INVALID_ARGUMENT")
        where, values = [], []
        for column, value in (("camera", camera), ("person_id", person), ("type", type_)):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(value)
        if since is not None:
            where.append("ts >= ?")
            values.append(parse_since(since))
        sql = "SELECT payload FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        rows = self.store.connection.execute(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*values, limit, offset))
        return [json.loads(r[0]) for r in rows]

    def event(self, event_id: str) -> dict | None:
        """One stored event by its event_id (None when unknown or pruned)."""
        row = self.store.connection.execute("SELECT payload FROM events WHERE event_id = ?", (event_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def prune(self, now: float) -> int:
        """Forget history older than events.history_days; returns how many events went."""
        cutoff = utc_iso((datetime.fromtimestamp(now, timezone.utc) - timedelta(days=self.history_days)).timestamp())
        with self.store.transaction() as connection:
            return connection.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
