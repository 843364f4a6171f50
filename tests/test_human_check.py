"""The detector's human check (issue 23): no face on animals or face-free photos, human faces kept, a clip of
animal photos played frame by frame gives no face, and the check's embedding is the face's."""
from __future__ import annotations

import numpy as np
import pytest

from device.config import load_config
from device.imaging import read_image_file
from device.vision.embedder import l2_normalise
from device.vision.pipeline import Pipeline
from tests.clips import read_frames, write_clip

IMAGES = (".jpg", ".jpeg", ".png")


def _photos(folder):
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGES)


def _negatives(faces_dir):
    return (_photos(faces_dir / "animals/images") + _photos(faces_dir / "noface")
            + [faces_dir / "dlib/examples/faces/dogs.jpg"])


def test_no_face_on_any_animal_or_face_free_photo(pipeline, faces_dir):
    """Tuning (Oxford-IIIT Pet, dogs.jpg, chelsea.png) and checking photos alike, at full size and halved."""
    import cv2

    found = {}
    for path in _negatives(faces_dir):
        image = read_image_file(str(path))
        half = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        for name, variant in ((path.name, image), (path.name + " x0.5", half)):
            faces = pipeline.detect(variant)
            if faces:
                found[name] = [round(f.score, 2) for f in faces]
    assert len(_negatives(faces_dir)) >= 51
    assert found == {}


def test_without_the_human_check_animals_pass(faces_dir):
    """The check is what rejects them: switched off, today's YuNet + BlazeFace gates keep some dog faces."""
    plain = Pipeline(load_config(env={}, overrides={"detector.human_check": False}))
    animals = _photos(faces_dir / "animals/images")
    assert sum(1 for path in animals if plain.detect(read_image_file(str(path)))) >= 3


def test_human_faces_keep_a_high_human_score(pipeline, faces_dir):
    folder = faces_dir / "face_recognition/examples"
    for name in ("obama.jpg", "biden.jpg", "two_people.jpg"):
        faces = pipeline.detect(read_image_file(str(folder / name)))
        assert faces, name
        assert all(face.human_score is not None and face.human_score >= 0.9 for face in faces), name


def test_human_threshold_is_applied(faces_dir):
    strict = Pipeline(load_config(env={}, overrides={"detector.human_threshold": 1.0}))
    assert strict.detect(read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))) == []


def test_the_checks_embedding_is_the_faces_embedding(pipeline, faces_dir):
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    face = pipeline.detect(image)[0]
    assert face.embedding is not None and face.aligned is not None
    fresh = pipeline.embedder.embed(face.aligned)
    assert float(np.dot(face.embedding, fresh)) > 0.9999
    before = face.embedding.copy()
    pipeline.embed(image, [face])  # not re-run: the same vector
    assert np.array_equal(face.embedding, before)
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    assert np.allclose(l2_normalise(face.embedding), face.embedding)


def test_manifest_records_the_fit(pipeline):
    params = pipeline.manifest.human_check()
    for key in ("features", "method", "fitted_on", "weights", "bias", "mean", "scale"):
        assert key in params, key
    assert len(params["weights"]) == len(params["mean"]) == len(params["scale"]) == 131


@pytest.fixture(scope="module")
def animal_clip(faces_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "animals.avi"
    return write_clip(_photos(faces_dir / "animals/images") + [faces_dir / "dlib/examples/faces/dogs.jpg"], path,
                      frames_per_photo=2)


def test_animal_clip_gives_no_face_in_any_frame(animal_clip, faces_dir):
    """Every frame of a clip made from the animal photos (JPEG-compressed video frames, letterboxed to
    640x480 as a camera would deliver them) goes through the engine's detection: no face."""
    from device.engine import Engine

    engine = Engine(load_config(env={}))
    frames = with_faces = 0
    for frame in read_frames(animal_clip):
        frames += 1
        if engine.detect(frame, mesh=False):
            with_faces += 1
    assert frames == 2 * (len(_photos(faces_dir / "animals/images")) + 1)
    assert with_faces == 0


def test_clip_of_people_gives_faces(faces_dir, tmp_path):
    """The same clip path finds the people in a clip of portraits, so the animal clip test can fail."""
    from device.engine import Engine

    folder = faces_dir / "face_recognition/examples"
    clip = write_clip([folder / "obama.jpg", folder / "biden.jpg"], tmp_path / "people.avi", frames_per_photo=2)
    engine = Engine(load_config(env={}))
    counts = [len(engine.detect(frame, mesh=False)) for frame in read_frames(clip)]
    assert counts == [1, 1, 1, 1]


def test_animal_clip_played_as_a_camera_gives_no_track(animal_clip, tmp_path, pipeline, faces_dir):
    """The same clip as a camera source through the daemon's camera loop: no track is ever opened, so no event."""
    import time

    from device.camera.loop import Camera
    from device.engine import Engine
    from device.config import CameraConfig
    from device.events.outbox import Outbox
    from device.events.sink import EventSink

    config = load_config(env={}, overrides={"store.db": str(tmp_path / "faced.db")})
    with Engine(config, create=True, pipeline=pipeline) as engine:
        engine.create_collection("home")
        engine.add_person("home", "Obama", [engine.photo_file(str(faces_dir / "face_recognition/examples/obama.jpg"))])
        outbox = Outbox(engine.store, 1000, 1.0)
        camera = Camera("pets", CameraConfig(source=str(animal_clip)), engine, EventSink(outbox, None)).start()
        opened = []
        try:
            deadline = time.monotonic() + 300  # a hang guard, not a timing assertion
            while camera.state != "ended" and time.monotonic() < deadline:
                opened.append(camera.status()["tracks"])
                time.sleep(0.05)
            assert camera.state == "ended"
        finally:
            camera.stop()
        status = camera.status()
        assert status["frames"] == 2 * (len(_photos(faces_dir / "animals/images")) + 1)
        assert status["processed"] >= 1 and status["errors"] == 0
        assert camera.tracker._next_id == 1 and not any(opened)  # no track was ever opened
        assert outbox.history(limit=100) == []


def test_a_known_face_is_not_checked_again_and_a_new_one_is(pipeline, faces_dir):
    """A camera passes the boxes of its tracks: a face overlapping one skips the human check (no SFace run, so
    no embedding yet); the same face with no known box is checked (and embedded by the check)."""
    image = read_image_file(str(faces_dir / "face_recognition/examples/obama.jpg"))
    checked = pipeline.detect(image)
    assert len(checked) == 1 and checked[0].embedding is not None
    known = pipeline.detect(image, known=[checked[0].box + np.array([3, 2, 0, 0])])
    assert len(known) == 1 and known[0].embedding is None
    assert np.allclose(known[0].box, checked[0].box)
    elsewhere = pipeline.detect(image, known=[np.array([0.0, 0.0, 20.0, 20.0])])
    assert elsewhere[0].embedding is not None
