"""One engine, many threads: searches and enrolments at once give the answers sequential calls give."""
from __future__ import annotations

import threading
import time

from device.config import load_config
from device.engine import Engine
from device.imaging import read_image_file

SEARCHERS, ENROLLERS, SECONDS = 4, 4, 4.0


def _answer(recognitions) -> list:
    return sorted((m.person_id, m.similarity_score) for r in recognitions for m in r.matches)


def test_eight_threads_search_and_enrol_through_one_engine(tmp_path, faces_dir, pipeline):
    knn = faces_dir / "face_recognition/examples/knn_examples"
    config = load_config(env={}, overrides={"store.db": str(tmp_path / "threads.db")})
    with Engine(config, create=True, pipeline=pipeline) as engine:
        engine.create_collection("home")
        assert engine.enrol_folder(knn / "train", "home")["accepted"] == 9
        images = [read_image_file(str(p)) for p in sorted((knn / "test").glob("*.jpg"))]
        expected = [_answer(engine.search("home", image)) for image in images]
        assert any(expected)
        # Photos for the enrolling threads: the deepface people, one new person per photo (force: the same
        # face may come twice; the count is what matters).
        photos = sorted((faces_dir / "deepface/images").rglob("*.jpg"))[:40]
        errors, mismatches, searches, accepted = [], [], [0], [0]
        lock = threading.Lock()
        stop = time.monotonic() + SECONDS

        def search_loop(offset: int) -> None:
            number = offset
            while time.monotonic() < stop:
                index = number % len(images)
                try:
                    answer = _answer(engine.search("home", images[index]))
                except Exception as exc:  # the test reports any error of any kind
                    errors.append(repr(exc))
                    return
                got = [(p, round(s, 6)) for p, s in answer]
                want = [(p, round(s, 6)) for p, s in expected[index]]
                if [p for p, _ in got] != [p for p, _ in want] or any(
                        abs(a - b) > 1e-6 for (_, a), (_, b) in zip(answer, expected[index])):
                    mismatches.append((index, got, want))
                with lock:
                    searches[0] += 1
                number += 1

        def enrol_loop(offset: int) -> None:
            number = offset
            while time.monotonic() < stop:
                photo = photos[number % len(photos)]
                try:
                    enrolment = engine.add_person("home", f"t{offset}-{number}", [engine.photo_file(str(photo))],
                                                  force=True)
                except Exception as exc:
                    errors.append(repr(exc))
                    return
                with lock:
                    accepted[0] += sum(o.accepted for o in enrolment.outcomes)
                number += ENROLLERS

        threads = [threading.Thread(target=search_loop, args=(i,)) for i in range(SEARCHERS)]
        threads += [threading.Thread(target=enrol_loop, args=(i,)) for i in range(ENROLLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert mismatches == []
        assert searches[0] >= SEARCHERS and accepted[0] >= 1
        assert engine.collection("home").faces == 9 + accepted[0]
        # The shared index holds every face the table holds.
        index = engine.searcher.index(engine.collection("home"))
        face_ids = index.refresh().face_ids
        table = [r[0] for r in engine.store.connection.execute("SELECT id FROM faces ORDER BY id")]
        assert sorted(face_ids.tolist()) == table
