"""Recurring unknown visitors through the real daemon on the real clip: the same visitor_id in two separate
runs, promotion to a named person (recognized in the next run), and retention (simulated clock) leaving nothing
of the visitors in the database file or its WAL."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.conftest import run_faced, wait_for
from tests.test_daemon import Daemon, _camera, _copy, daemons, enrolled  # noqa: F401 (fixtures)


def _play(tmp_path, db, data, daemons) -> list[dict]:  # noqa: F811
    """Play the clip once through a fresh daemon; the events of this run (oldest first), the visitors."""
    from device.events.outbox import utc_iso

    started = utc_iso(time.time())
    daemon = Daemon(tmp_path, db, _camera(data, liveness="off"))
    daemons.append(daemon.start())
    wait_for(lambda: (lambda h: h and h["cameras"]["door"]["state"] == "ended"
                      and daemon.get("/cameras")["cameras"][0]["tracks"] == 0)(daemon.get("/health")), 180,
             what="the clip to end")
    events = daemon.get(f"/events?limit=1000&since={started}")["events"]
    visitors = daemon.get("/visitors")["visitors"]
    assert daemon.terminate() < 10
    return events[::-1], visitors, daemon


def _post(daemon, path: str, body: dict):
    request = urllib.request.Request(f"http://127.0.0.1:{daemon.port}{path}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"x-api-key": daemon.key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_visitor_recurs_is_promoted_and_expires(tmp_path, data, enrolled, daemons):  # noqa: F811
    db = _copy(enrolled, tmp_path)
    first, visitors_1, _ = _play(tmp_path, db, data, daemons)
    unknown_1 = [e for e in first if e["type"] == "unknown" and e["evidence"] > 0]
    assert unknown_1 and all(e["visitor_id"] for e in unknown_1)  # a track without one good frame has no face
    assert all(e["visitor_id"] is None for e in first if e["type"] == "unknown" and e["evidence"] == 0)
    assert all(e["visitor_id"] is None for e in first if e["type"] == "recognized")
    left = {e["track_id"]: e for e in first if e["type"] == "left"}
    assert all(left[e["track_id"]]["visitor_id"] == e["visitor_id"] for e in unknown_1)
    ids_1 = {e["visitor_id"] for e in unknown_1}
    assert {v["visitor_id"] for v in visitors_1} == ids_1

    second, visitors_2, daemon = _play(tmp_path, db, data, daemons)
    ids_2 = {e["visitor_id"] for e in second if e["type"] == "unknown"}
    recurring = ids_1 & ids_2
    assert recurring, (ids_1, ids_2)  # the same unknown faces, recognised again on a later visit
    assert len(ids_2 - ids_1) <= len(ids_2) // 2, (ids_1, ids_2)
    counts = {v["visitor_id"]: v for v in visitors_2}
    assert all(counts[v]["visits"] >= 2 for v in recurring)

    kept = tmp_path / "retention" / "faced.db"  # the visitors as they are now, for the retention check below
    kept.parent.mkdir()
    from device.store.db import Store

    with Store(db) as store:
        store.backup(kept)

    # promote the most frequent one through the API of a daemon without cameras
    chosen = max(recurring, key=lambda v: (counts[v]["visits"], counts[v]["faces"]))
    api = Daemon(tmp_path, db).start()
    daemons.append(api)
    assert _post(api, "/visitors/not-a-visitor/promote", {"person_name": "X"})[0] == 404
    status, promoted = _post(api, f"/visitors/{chosen}/promote", {"person_name": "Front Door Friend"})
    assert status == 201, promoted
    assert promoted["person_name"] == "Front Door Friend" and any(f["accepted"] for f in promoted["faces"])
    assert chosen not in {v["visitor_id"] for v in api.get("/visitors")["visitors"]}
    api.terminate()

    third, _, _ = _play(tmp_path, db, data, daemons)
    named = [e for e in third if e["type"] == "recognized" and e["person_name"] == "Front Door Friend"]
    assert named and all(e["person_id"] == promoted["person_id"] for e in named)
    assert chosen not in {e["visitor_id"] for e in third}

    # the CLI lists the same visitors, and forgets one
    listed = run_faced("--db", str(db), "visitors", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert chosen not in {v["visitor_id"] for v in json.loads(listed.stdout)}
    missing = run_faced("--db", str(db), "visitors", "forget", chosen)
    assert missing.returncode == 1 and "VISITOR_NOT_FOUND" in missing.stderr

    # retention, simulated clock: 31 days later nothing of any visitor is left in the file
    from device.config import load_config
    from device.engine import Engine

    listed = run_faced("--db", str(kept), "visitors", "list", "--json")
    remaining = json.loads(listed.stdout)
    assert {v["visitor_id"] for v in remaining} == {v["visitor_id"] for v in visitors_2}
    db = kept
    with Engine(load_config(env={"FACED_DB": str(db)})) as engine:
        connection = engine.store.connection
        secrets = [bytes(r[0]) for r in connection.execute("SELECT embedding FROM visitor_faces")]
        secrets += [bytes(r[0]) for r in connection.execute("SELECT thumbnail FROM visitor_faces")]
        secrets += [r[0].encode() for r in connection.execute("SELECT id FROM visitors")]
        assert len(secrets) >= 3
        engine.store.checkpoint()
        before = _file_bytes(db)
        assert all(_needle(secret) in before for secret in secrets)  # the check below can see them
        assert engine.visitors.expire(now=time.time() + 20 * 86400)["visitors_erased"] == 0  # within 30 days
        result = engine.visitors.expire(now=time.time() + 31 * 86400)
        assert result["visitors_erased"] == len(remaining)
        assert connection.execute("SELECT count(*) FROM visitor_faces").fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM events WHERE visitor_id IS NOT NULL").fetchone()[0] == 0
        assert connection.execute("SELECT count(*) FROM face_log").fetchone()[0] <= 1
        # enrolled persons are untouched, and still found after the face log was trimmed
        person = engine.persons("home")[0]
        image = engine.read_image(data / "faces/face_recognition/examples/lin-manuel-miranda.png")
        assert engine.search_one("home", image).best.person_id == person.id == enrolled[1]
    blobs = _file_bytes(db)
    for secret in secrets:
        assert _needle(secret) not in blobs, f"{len(secret)}-byte visitor data still in the file"


def _file_bytes(db) -> bytes:
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _needle(secret: bytes) -> bytes:
    """64 bytes from the middle: the embedding's floats, the JPEG's entropy-coded data (its headers and Huffman
    tables are the same in every thumbnail, the enrolled persons' too)."""
    middle = len(secret) // 2
    return secret[middle:middle + 64] if len(secret) > 300 else secret


def test_visitors_off_keeps_none(tmp_path, data, enrolled):  # noqa: F811
    """visitors.retention_days = 0: an unknown face gets no visitor id and nothing is stored."""
    from device.config import load_config
    from device.engine import Engine
    from device.visitors import Sighting

    db = _copy(enrolled, tmp_path)
    for days, expect_id in ((0, False), (30, True)):
        config = load_config(env={"FACED_DB": str(db), "FACED_VISITORS_RETENTION_DAYS": str(days)})
        with Engine(config) as engine:
            image = engine.read_image(data / "faces/face_recognition/examples/obama.jpg")
            face = engine.detect(image, embed=True)[0]
            visitor = engine.visitors.observe("home", [Sighting(face.embedding, face.aligned, 0.9)], "door")
            assert bool(visitor) is expect_id
            assert len(engine.visitors.list()) == int(expect_id)
    off = run_faced("--db", str(db), "visitors", "promote", "x", "--name", "N", env={
        "FACED_VISITORS_RETENTION_DAYS": "0"})
    assert off.returncode == 1 and "VISITOR_NOT_FOUND" in off.stderr
