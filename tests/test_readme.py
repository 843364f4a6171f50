"""The `--json` shapes the README documents, pinned on real images (the config block: tests/test_config.py;
the error table: tests/test_errors.py)."""
from __future__ import annotations

import json

from tests.conftest import run_faced


def shape(value):
    """A JSON value's shape: objects keep their keys, lists their first item's shape, scalars their type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return {bool: "bool", int: "number", float: "number", str: "str", type(None): "null"}[type(value)]


BOX, POINT = ["number"], ["number"]
FACE = {"box": BOX, "score": "number", "landmarks": [POINT], "quality": {"score": "number", "codes": []},
        "age": "number", "gender": "str"}
# The shapes README "Stable JSON interfaces" documents, pinned.
GOLDEN = {
    "detect": {"image": "str", "faces": [FACE]},
    "detect --pose --liveness": {"image": "str", "faces": [dict(FACE, liveness={"score": "number", "live": "bool",
                                                                                "codes": []},
                                                                pose={"yaw": "number", "pitch": "number",
                                                                      "roll": "number"}, eyes_open="number")]},
    "detect error": {"image": "str", "error": {"code": "str", "message": "str"}},
    "liveness": {"image": "str", "faces": [{"box": BOX, "liveness": {"score": "number", "live": "bool",
                                                                      "codes": []}}]},
    "compare": {"score": "number", "cosine": "number", "same": "bool", "threshold": "number"},
    "search": {"person_search_results": [{"person_id": "str", "person_name": "str", "metadata": {"role": "str"},
                                          "similarity_score": "number", "face_base_64": "str", "box": BOX}],
               "unrecognized_face_thumbnails_base_64": ["str"], "unrecognized_faces": [{"box": BOX}]},
}


def test_documented_json_outputs_keep_their_shape(tmp_path, faces_dir):
    examples = faces_dir / "face_recognition/examples"
    obama, two = str(examples / "obama.jpg"), str(examples / "two_people.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff")
    db = str(tmp_path / "golden.db")
    assert run_faced("--db", db, "collections", "create", "home").returncode == 0
    assert run_faced("--db", db, "persons", "add", "--collection", "home", "--name", "Obama", "--metadata",
                     '{"role": "president"}', obama).returncode == 0
    outputs = {
        "detect": run_faced("detect", "--json", obama),
        "detect --pose --liveness": run_faced("detect", "--json", "--pose", "--liveness", obama),
        "detect error": run_faced("detect", "--json", str(tmp_path / "bad.jpg")),
        "liveness": run_faced("liveness", "--json", obama),
        "compare": run_faced("compare", "--json", obama, str(examples / "obama2.jpg")),
        "search": run_faced("--db", db, "search", "--json", str(examples / "knn_examples/test/obama_and_biden.jpg"),
                            "--collection", "home"),
    }
    for name, result in outputs.items():
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1, (name, result.stdout, result.stderr)
        assert shape(json.loads(lines[0])) == GOLDEN[name], name
    assert len(json.loads(run_faced("detect", "--json", two).stdout)["faces"]) == 2


def test_readme_curl_examples_work_as_printed(api, tmp_path):
    """The HTTP API section's shell block, run by bash against a real server: every command succeeds and every
    answer is a success (only the port, the database and the key's name differ from the printed text)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## HTTP API"):readme.index("### Error codes")]
    script = "\n".join(line[4:] for line in section.splitlines() if line.startswith("    "))
    assert "curl" in script and "faced keys create" in script
    faced = f"{Path(sys.executable).with_name('faced')} --db {api.db}"
    script = script.replace("localhost:8080", f"127.0.0.1:{api.port}").replace(".venv/bin/faced", faced)
    script = script.replace("--name app", "--name readme").replace('"app:$KEY"', '"readme:$KEY"')
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=str(REPO), capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("FACED_")}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    answers, decoder, text, at = [], json.JSONDecoder(), result.stdout, 0
    while (at := text.find("{", at)) >= 0:  # curl prints answers back to back; /metrics is plain text
        try:
            body, end = decoder.raw_decode(text, at)
        except ValueError:
            at += 1
            continue
        answers.append(body)
        at = end
    assert len(answers) >= 10  # contracts 1-5, management, health, openapi
    for body in answers:
        if isinstance(body, dict):
            assert not re.match(r"(ERR_|FACE_NOT)", str(body.get("code", body.get("errorCode", "")))), body
            assert body.get("hasError") is not True and body.get("error_code", 0) == 0, body
            assert body.get("respcode", "200") == "200" and "error" not in body, body
