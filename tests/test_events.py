"""The outbox on a real faced database: seq per device, the bound with its drop counter, acknowledgement,
erasure of a person's events and state, history filters and pruning."""
from __future__ import annotations

import time

import numpy as np
import pytest

from device.errors import InvalidInput
from device.events.outbox import Outbox, utc_iso
from device.events.presence import Presence
from device.store.db import NewFace, Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "faced.db", create=True) as store:
        yield store


def _event(kind="unknown", person=None, camera="door", ts=None):
    return {"type": kind, "camera": camera, "track_id": 1, "person_id": person, "person_name": None,
            "score": None, "liveness": None, "box": [0, 0, 1, 1], "ts": ts or utc_iso(time.time())}


def test_bounded_outbox_drops_oldest_and_counts(store):
    outbox = Outbox(store, outbox_max=10, history_days=30)
    seqs = [outbox.record(_event())["seq"] for _ in range(15)]
    assert seqs == list(range(1, 16))
    pending = outbox.pending(0, 100)
    assert [m.seq for m in pending] == list(range(6, 16)) and outbox.dropped() == 5
    outbox.acknowledged([m.id for m in pending[:4]])
    assert outbox.depth() == 6
    assert len(outbox.history(limit=1000)) == 15  # the history keeps what the outbox dropped


def test_erasing_a_person_removes_their_events_and_state(store):
    collection = store.create_collection("home", {"model": "m", "precision": "p", "sha256": "s"})
    vector = np.ones(128, np.float32) / np.sqrt(128)
    person_id, _ = store.add_person(collection, "Alice", [NewFace(vector, b"\xff\xd8")])
    outbox = Outbox(store, outbox_max=100, history_days=30)
    presence = Presence(outbox, absence_timeout_s=0.0)
    outbox.record(_event("recognized", person_id))
    presence.arrived(person_id, "door", time.time())
    outbox.record(_event("unknown"))
    assert outbox.states() == {person_id: "present"}
    store.delete_person(person_id)
    pending = outbox.pending(0, 100)
    assert all(person_id not in m.payload for m in pending if m.topic == "events")
    clear = [m for m in pending if m.topic == f"person/{person_id}/state"]
    assert clear[-1].payload == "" and clear[-1].retain  # the retained state is cleared at the broker too
    assert outbox.history(person=person_id) == [] and outbox.states() == {}
    assert outbox.record(_event("recognized", person_id)) is None  # a late event for an erased person


def test_history_filters_and_pruning(store):
    outbox = Outbox(store, outbox_max=100, history_days=1)
    old = utc_iso(time.time() - 3 * 86400)
    outbox.record(_event("unknown", camera="yard", ts=old))
    outbox.record(_event("left", camera="door"))
    assert [e["camera"] for e in outbox.history(camera="yard")] == ["yard"]
    assert [e["type"] for e in outbox.history(since="2000-01-01")] == ["left", "unknown"]
    assert outbox.history(type_="left", limit=1)[0]["type"] == "left"
    with pytest.raises(InvalidInput):
        outbox.history(type_="arrived")
    with pytest.raises(InvalidInput):
        outbox.history(since="yesterday")
    assert outbox.prune(time.time()) == 1 and len(outbox.history()) == 1
