"""The `faced` command line: JSON shapes, exit statuses, drawing, doctor and models."""
from __future__ import annotations

import json

from tests.conftest import run_faced


def test_detect_json_one_line_per_image(faces_dir, tmp_path):
    good = faces_dir / "face_recognition/examples/two_people.jpg"
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[:2000])
    result = run_faced("detect", "--json", str(good), str(bad))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["image"] == str(good) and len(lines[0]["faces"]) == 2
    face = lines[0]["faces"][0]
    assert len(face["box"]) == 4 and 0 <= face["score"] <= 1 and len(face["landmarks"]) == 5
    assert lines[1]["image"] == str(bad) and lines[1]["error"]["code"] == "INVALID_IMAGE"
    assert result.returncode == 1  # one image failed
    assert "Traceback" not in result.stderr


def test_detect_table_and_draw(faces_dir, tmp_path):
    out = tmp_path / "drawn.png"
    result = run_faced("detect", str(faces_dir / "face_recognition/examples/obama.jpg"), "--draw", str(out))
    assert result.returncode == 0, result.stderr
    assert "1 face" in result.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_usage_error_exit_2():
    assert run_faced("detect").returncode == 2
    assert run_faced("no-such-command").returncode == 2


def test_bad_config_exit_1(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[api]\nport = -1\n")
    result = run_faced("--config", str(path), "doctor")
    assert result.returncode == 1 and "api.port" in result.stderr


def test_doctor(tmp_path):
    result = run_faced("--db", str(tmp_path / "x.db"), "doctor", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    names = {item["check"]: item for item in report["checks"]}
    assert "sqlite-vec" in names["sqlite"]["detail"]
    assert "verified" in names["models"]["detail"]


def test_models_list_and_verify():
    listed = run_faced("models", "list", "--json")
    rows = json.loads(listed.stdout)
    sface = [r for r in rows if r["model"] == "sface" and r["shipped"]]
    assert any(r["selected"] for r in sface)
    assert any(r["precision"] in ("dynamic", "int8") for r in sface)  # a quantized embedder ships
    for row in rows:
        assert row["fidelity"], row  # every variant states how faithful it is
    verified = run_faced("models", "verify", "--json")
    assert verified.returncode == 0, verified.stdout
    assert all(item["ok"] for item in json.loads(verified.stdout))
