"""`faced models tune`: the fastest passing precision per model, written next to the database, loaded under the
config file; never a variant that fails its bar; a changed embedder precision is refused until reembed."""
from __future__ import annotations

import json
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from device.config import PRECISION_KEYS, load_config
from device.vision.manifest import Manifest, default_models_dir
from tests.conftest import run_faced


def _selected(db, env=None) -> dict:
    rows = json.loads(run_faced("--db", str(db), "models", "list", "--json", env=env).stdout)
    return {r["model"]: r["precision"] for r in rows if r["selected"]}


def test_tune_writes_the_fastest_passing_precisions_next_to_the_database(tmp_path):
    db = tmp_path / "state" / "faced.db"
    result = run_faced("--db", str(db), "models", "tune", "--rounds", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    tuned = tmp_path / "state" / "tuned.toml"
    assert report["file"] == str(tuned) and tuned.is_file()
    manifest = Manifest()
    for model, precision in report["chosen"].items():
        timings = report["timings_ms"][model]
        assert timings[precision] == min(timings.values())  # what it measured as fastest
        passing = {v.precision for v in manifest.variants(model) if v.shipped and v.passes}
        assert set(timings) == passing  # every passing variant timed, no other
    written = tomllib.loads(tuned.read_text())
    for model, precision in report["chosen"].items():
        section, key = PRECISION_KEYS[model].split(".")
        assert written[section][key] == precision
    # Loaded between the defaults and the config file: models list shows it, an explicit choice still wins.
    selected = _selected(db)
    assert all(selected[m] == p for m, p in report["chosen"].items())
    config = load_config(env={}, overrides={"store.db": str(db), "embedder.precision": "fp32"})
    assert config.embedder.precision == "fp32"
    assert load_config(env={}, overrides={"store.db": str(db)}).embedder.precision == report["chosen"]["sface"]
    doctor = json.loads(run_faced("--db", str(db), "doctor", "--json").stdout)
    assert any(c["check"] == "tuning" and "tuned.toml" in c["detail"] for c in doctor["checks"])


def test_tune_never_picks_a_variant_that_fails_its_bar(tmp_path):
    # A copy of the models whose manifest says the fastest gender variant fails its bar.
    models = tmp_path / "models"
    models.mkdir()
    for item in default_models_dir().iterdir():
        if item.suffix == ".tflite":
            (models / item.name).symlink_to(item)
    first = json.loads(run_faced("--db", str(tmp_path / "a" / "x.db"), "models", "tune", "--rounds", "1",
                                 "--json").stdout)
    fastest = first["chosen"]["gender"]
    text = (default_models_dir() / "manifest.toml").read_text()
    section = re.search(rf"\[gender\.variants\.{fastest}\]\n(.*?)\n\n", text, re.S)
    assert "passes = true" in section.group(1)
    patched = text[:section.start(1)] + section.group(1).replace("passes = true", "passes = false") + \
        text[section.end(1):]
    (models / "manifest.toml").write_text(patched)
    env = {"FACED_VISION_MODELS_DIR": str(models)}
    second = json.loads(run_faced("--db", str(tmp_path / "b" / "x.db"), "models", "tune", "--rounds", "1",
                                  "--json", env=env).stdout)
    assert fastest not in second["timings_ms"]["gender"] and second["chosen"]["gender"] != fastest


def test_a_collection_made_with_another_precision_is_refused_until_reembedded(tmp_path, faces_dir):
    db = tmp_path / "faced.db"
    assert run_faced("--db", str(db), "models", "tune", "--rounds", "1").returncode == 0
    tuned = tomllib.loads((tmp_path / "tuned.toml").read_text())["embedder"]["precision"]
    other = next(v.precision for v in Manifest().variants("sface") if v.shipped and v.passes
                 and v.precision != tuned)
    examples = faces_dir / "face_recognition/examples"
    before = {"FACED_EMBEDDER_PRECISION": other}  # as the device was before tuning
    assert run_faced("--db", str(db), "collections", "create", "home", env=before).returncode == 0
    assert run_faced("--db", str(db), "persons", "add", "--collection", "home", "--name", "Obama",
                     str(examples / "obama.jpg"), env=before).returncode == 0
    refused = run_faced("--db", str(db), "search", str(examples / "obama2.jpg"), "--collection", "home")
    assert refused.returncode == 1 and "EMBEDDER_MISMATCH" in refused.stderr and "reembed" in refused.stderr
    assert run_faced("--db", str(db), "reembed", "--collection", "home").returncode == 0
    found = run_faced("--db", str(db), "search", str(examples / "obama2.jpg"), "--collection", "home", "--json")
    assert json.loads(found.stdout)["person_search_results"][0]["person_name"] == "Obama"


def test_tuned_file_with_an_unknown_key_is_a_clear_error(tmp_path):
    (tmp_path / "tuned.toml").write_text("[detector]\nprecisoin = 'fp16'\n")
    result = run_faced("--db", str(tmp_path / "faced.db"), "doctor")
    assert result.returncode == 1 and "tuned.toml" in result.stderr and "CONFIG_ERROR" in result.stderr
