"""Active liveness through the real daemon: photo attacks built here from a still photo of an enrolled person
(moved and scaled over 3 s; the same on a simulated phone screen with glare and moiré) give `spoof` and never
`recognized` on a camera with liveness = "both"; the real clip still recognises Lin-Manuel Miranda there.
Unit checks of the motion measures on the same clips (device/vision/motion.py)."""
from __future__ import annotations

import pytest

from tests.clips import read_frames, write_photo_attack
from tests.conftest import wait_for
from tests.test_daemon import CLIP, LIN, Daemon, _copy, daemons, enrolled  # noqa: F401 (fixtures)


def _events(tmp_path, db, source, liveness, daemons) -> list[dict]:  # noqa: F811
    camera = f'[cameras.door]\nsource = "{source}"\ncollection = "home"\nliveness = "{liveness}"\n'
    daemon = Daemon(tmp_path, db, camera)
    daemons.append(daemon.start())
    wait_for(lambda: (lambda h: h and h["cameras"]["door"]["state"] == "ended"
                      and daemon.get("/cameras")["cameras"][0]["tracks"] == 0)(daemon.get("/health")), 180,
             what="the clip to end")
    events = daemon.get("/events?limit=1000")["events"]
    daemon.terminate()
    return events


@pytest.mark.parametrize("screen", [False, True], ids=["photo", "screen"])
def test_photo_attack_is_spoof_never_recognized(tmp_path, data, enrolled, daemons, screen):  # noqa: F811
    clip = write_photo_attack(data / LIN, tmp_path / "attack.avi", seconds=3.0, screen=screen)
    events = _events(tmp_path, _copy(enrolled, tmp_path), clip, "both", daemons)
    decisions = [e for e in events if e["type"] != "left"]
    assert decisions, events
    assert not [e for e in events if e["type"] == "recognized"], decisions
    spoofs = [e for e in decisions if e["type"] == "spoof"]
    assert spoofs, decisions
    for event in spoofs:
        assert event["liveness"]["live"] is False
        assert event["liveness"]["active"]["live"] is False and event["liveness"]["active"]["seconds"] >= 2.0


def test_real_clip_is_not_spoof_for_lin(tmp_path, data, enrolled, daemons):  # noqa: F811
    events = _events(tmp_path, _copy(enrolled, tmp_path), data / CLIP, "both", daemons)
    lin = [e for e in events if e["person_id"] == enrolled[1] and e["type"] != "left"]
    assert lin and all(e["type"] == "recognized" for e in lin), lin
    assert all(e["liveness"]["live"] is True and e["liveness"]["active"]["signs"] for e in lin)


def test_motion_measures_separate_attack_from_real(tmp_path, data, pipeline):
    """The measures themselves: the attack clip stays under every threshold; the real clip's tracks pass."""
    from device.camera.tracker import Tracker
    from device.config import load_config
    from device.vision.motion import MotionEvidence, MotionThresholds

    thresholds = MotionThresholds()

    def tracks(path, fps):
        tracker, evidence = Tracker(load_config(env={}).tracking, 0.7, None), {}
        for index, frame in enumerate(read_frames(path)):
            if index % 2:
                continue
            ts = index / fps
            for track, face in tracker.update(ts, pipeline.detect(frame)):
                pipeline.assess(frame, [face])
                evidence.setdefault(track.id, MotionEvidence(thresholds)).add(ts, face.mesh, face.aligned)
            tracker.expire(ts)
        return [e for e in evidence.values() if e.measures()["frames"] >= thresholds.min_frames]

    attack = tracks(write_photo_attack(data / LIN, tmp_path / "a.avi", seconds=3.0, screen=True), 15.0)
    assert attack and all(e.verdict() and e.verdict()["live"] is False for e in attack)
    real = tracks(data / CLIP, 29.97)
    assert real and all(e.verdict()["live"] is True for e in real if e.verdict() is not None)
