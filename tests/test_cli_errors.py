"""Every way a user (or an attacker) can get the CLI wrong ends in one line and a stable code, never a traceback.

One table of cases runs through the installed `faced`: each asserts the exit status, the exact error code, a
single line on standard error and no "Traceback"; with --json the error is one object on standard output.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import string
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO


def faced_command() -> list[str]:
    """The installed console script (the venv's), else the module it runs."""
    script = Path(sys.executable).with_name("faced")
    return [str(script)] if script.exists() else [sys.executable, "-m", "device.cli"]


def faced(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_") or k == "FACED_TEST_DATA"}
    full_env.update(env or {})
    return subprocess.run([*faced_command(), *args], capture_output=True, text=True, env=full_env,
                          cwd=str(cwd or REPO), timeout=300, stdin=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (its data is a few bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@dataclass
class World:
    """Files the cases point at, made once per module in a temporary folder."""

    root: Path
    examples: Path
    db: Path  # a faced database with collection "home" holding Obama
    person_id: str = ""
    extra: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory, faces_dir) -> World:
    root = tmp_path_factory.mktemp("cli-errors")
    examples = faces_dir / "face_recognition/examples"
    db = root / "faced.db"
    assert faced("--db", str(db), "collections", "create", "home").returncode == 0
    added = faced("--db", str(db), "persons", "add", "--collection", "home", "--name", "Obama", "--json",
                  str(examples / "obama.jpg"))
    assert added.returncode == 0, added.stderr
    world = World(root, examples, db, json.loads(added.stdout)["person_id"])
    (root / "notes.txt").write_text("not a database\n")
    (root / "folder.db").mkdir()
    (root / "a-file").write_text("x")
    # Another application's SQLite file.
    other = root / "other-app.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        connection.execute("INSERT INTO invoices(total) VALUES (12.5)")
    # A truncated copy of a real faced database.
    full = root / "full.db"
    assert faced("--db", str(full), "collections", "create", "x").returncode == 0
    data = full.read_bytes()
    (root / "truncated.db").write_bytes(data[: len(data) // 3])
    # A read-only copy.
    readonly = root / "readonly.db"
    readonly.write_bytes(db.read_bytes())
    readonly.chmod(0o444)
    # Images.
    (root / "bomb.png").write_bytes(png_header(15000, 15000))
    (root / "huge-header.png").write_bytes(png_header(30000, 30000))
    deep = "[" * 50 + "]" * 50
    world.extra = {"deep": '{"a": ' + deep + "}", "big": json.dumps({"notes": "x" * 120_000})}
    return world


@dataclass
class Case:
    name: str
    args: list[str]  # "$db", "$root", "$examples", "$person" are filled in
    code: str
    env: dict = field(default_factory=dict)
    exit: int = 1


CASES = [
    # --db that is not usable
    Case("db is a text file", ["--db", "$root/notes.txt", "collections", "list"], "NOT_A_FACED_DB"),
    Case("db is a text file, creating", ["--db", "$root/notes.txt", "collections", "create", "c"], "NOT_A_FACED_DB"),
    Case("db truncated", ["--db", "$root/truncated.db", "collections", "list"], "DB_CORRUPT"),
    Case("db is a folder", ["--db", "$root/folder.db", "collections", "list"], "NOT_A_FACED_DB"),
    Case("db is /dev/zero", ["--db", "/dev/zero", "collections", "list"], "NOT_A_FACED_DB"),
    Case("db folder cannot be created", ["--db", "$root/a-file/sub/faced.db", "collections", "create", "c"],
         "DB_UNAVAILABLE"),
    Case("db read-only, writing", ["--db", "$root/readonly.db", "collections", "create", "c"], "DB_READ_ONLY"),
    Case("db typo, read-only command", ["--db", "$root/typo.db", "collections", "list"], "DB_NOT_FOUND"),
    Case("db typo, persons list", ["--db", "$root/typo.db", "persons", "list", "--collection", "home"],
         "DB_NOT_FOUND"),
    Case("db typo, search", ["--db", "$root/typo.db", "search", "$examples/obama.jpg", "--collection", "home"],
         "DB_NOT_FOUND"),
    Case("db of another application", ["--db", "$root/other-app.db", "collections", "create", "c"],
         "NOT_A_FACED_DB"),
    # import
    Case("import a text file", ["--db", "$db", "import", "$root/notes.txt"], "INVALID_EXPORT"),
    Case("import a missing file", ["--db", "$db", "import", "$root/missing.faced"], "FILE_NOT_FOUND"),
    # metadata
    Case("metadata nested deeply", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                                    "--metadata", "$deep", "$examples/biden.jpg"], "INVALID_METADATA"),
    Case("metadata NaN", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                          "--metadata", '{"x": NaN}', "$examples/biden.jpg"], "INVALID_METADATA"),
    Case("metadata Infinity", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                               "--metadata", '{"x": -Infinity}', "$examples/biden.jpg"], "INVALID_METADATA"),
    Case("metadata too big", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                              "--metadata", "$big", "$examples/biden.jpg"], "INVALID_METADATA"),
    Case("metadata not an object", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                                    "--metadata", "[1, 2]", "$examples/biden.jpg"], "INVALID_METADATA"),
    Case("metadata not JSON", ["--db", "$db", "persons", "add", "--collection", "home", "--name", "D",
                               "--metadata", "{oops", "$examples/biden.jpg"], "INVALID_METADATA"),
    # names
    Case("collection name empty", ["--db", "$db", "collections", "create", "   "], "INVALID_NAME"),
    Case("collection name too long", ["--db", "$db", "collections", "create", "n" * 201], "INVALID_NAME"),
    Case("collection name with a control character", ["--db", "$db", "collections", "create", "a\x07b"],
         "INVALID_NAME"),
    Case("person name with a format character", ["--db", "$db", "persons", "add", "--collection", "home",
                                                 "--name", "Ev\u202eil", "$examples/biden.jpg"], "INVALID_NAME"),
    Case("collection exists (padded name)", ["--db", "$db", "collections", "create", "  home "],
         "COLLECTION_EXISTS"),
    # outputs
    Case("draw with a bad extension", ["detect", "$examples/obama.jpg", "--draw", "$root/out.txt"],
         "OUTPUT_ERROR"),
    Case("draw into a missing folder", ["detect", "$examples/obama.jpg", "--draw", "$root/nowhere/out.png"],
         "OUTPUT_ERROR"),
    Case("backup into a missing folder", ["--db", "$db", "backup", "$root/nowhere/copy.db"], "OUTPUT_ERROR"),
    Case("backup onto an existing file", ["--db", "$db", "backup", "$root/notes.txt"], "FILE_EXISTS"),
    Case("export into a missing folder", ["--db", "$db", "export", "--collection", "home",
                                          "$root/nowhere/x.faced"], "OUTPUT_ERROR"),
    # options
    Case("run on port 99999", ["--db", "$db", "run", "--port", "99999"], "CONFIG_ERROR"),
    Case("search min score 5", ["--db", "$db", "search", "$examples/obama.jpg", "--collection", "home",
                                "--min-score", "5"], "INVALID_ARGUMENT"),
    Case("search max results -3", ["--db", "$db", "search", "$examples/obama.jpg", "--collection", "home",
                                   "--max-results", "-3"], "INVALID_ARGUMENT"),
    Case("search a missing collection", ["--db", "$db", "search", "$examples/obama.jpg", "--collection", "nope"],
         "COLLECTION_NOT_FOUND"),
    Case("enrol into a missing collection", ["--db", "$db", "persons", "add", "--collection", "nope", "--name",
                                             "B", "$examples/biden.jpg"], "COLLECTION_NOT_FOUND"),
    Case("enrol a folder that is a file", ["--db", "$db", "enroll", "$root/notes.txt", "--collection", "home"],
         "NOT_A_FOLDER"),
    Case("unknown person", ["--db", "$db", "persons", "show", "no-such-id"], "PERSON_NOT_FOUND"),
    Case("config file missing", ["--config", "$root/missing.toml", "doctor"], "CONFIG_ERROR"),
    Case("config env out of range", ["--db", "$db", "collections", "list"], "CONFIG_ERROR",
         env={"FACED_STORE_BUSY_TIMEOUT_S": "-1"}),
    # images
    Case("image too large", ["detect", "$examples/obama-1080p.jpg"], "IMAGE_TOO_LARGE",
         env={"FACED_IMAGES_MAX_BYTES": "100000"}),
    Case("image header over the pixel limit", ["detect", "$root/huge-header.png"], "IMAGE_TOO_LARGE"),
    Case("decompression bomb", ["detect", "$root/bomb.png"], "IMAGE_TOO_LARGE",
         env={"FACED_IMAGES_MAX_PIXELS": "400000000"}),
    Case("image is a folder", ["detect", "$root"], "IMAGE_UNREADABLE"),
    Case("image is text", ["compare", "$root/notes.txt", "$examples/obama.jpg"], "INVALID_IMAGE"),
    Case("compare without a face", ["compare", "$noface", "$examples/obama.jpg"], "FACE_NOT_FOUND"),
]


def _fill(args: list[str], world: World, faces_dir: Path) -> list[str]:
    noface = next(p for p in sorted((faces_dir / "noface").iterdir()) if p.suffix.lower() in (".jpg", ".png"))
    values = {"db": str(world.db), "root": str(world.root), "examples": str(world.examples),
              "person": world.person_id, "deep": world.extra["deep"], "big": world.extra["big"],
              "noface": str(noface)}
    return [string.Template(arg).safe_substitute(values) for arg in args]


def _check_failure(result: subprocess.CompletedProcess, case: Case) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.returncode == case.exit, (result.returncode, result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no TFLite banner, no progress bar
    assert lines[0].startswith(f"faced: {case.code}: ") or f": {case.code}: " in lines[0], lines[0]
    assert "INTERNAL_ERROR" not in lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_is_one_line_with_its_code(case: Case, world: World, faces_dir):
    before = {p: sha256(p) for p in (world.root / "other-app.db", world.root / "readonly.db")}
    result = faced(*_fill(case.args, world, faces_dir), env=case.env)
    _check_failure(result, case)
    # Nothing was created or changed on the way.
    assert not (world.root / "typo.db").exists()
    assert {p: sha256(p) for p in before} == before


JSON_CASES = [
    Case("compare --json, no face", ["compare", "--json", "$root/notes.txt", "$examples/obama.jpg"],
         "INVALID_IMAGE"),
    Case("search --json, missing collection", ["--db", "$db", "search", "--json", "$examples/obama.jpg",
                                               "--collection", "nope"], "COLLECTION_NOT_FOUND"),
    Case("collections list --json, typo'd db", ["--db", "$root/typo.db", "collections", "list", "--json"],
         "DB_NOT_FOUND"),
    Case("persons add --json, bad metadata", ["--db", "$db", "persons", "add", "--json", "--collection", "home",
                                              "--name", "D", "--metadata", "[]", "$examples/biden.jpg"],
         "INVALID_METADATA"),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c.name for c in JSON_CASES])
def test_json_failure_is_one_object_on_stdout(case: Case, world: World, faces_dir):
    result = faced(*_fill(case.args, world, faces_dir), env=case.env)
    _check_failure(result, case)
    body = json.loads(result.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == case.code


def test_messages_name_sizes_and_hints(world: World):
    big = faced("detect", str(world.examples / "obama-1080p.jpg"), env={"FACED_IMAGES_MAX_BYTES": "100000"})
    size = (world.examples / "obama-1080p.jpg").stat().st_size / 1024 / 1024
    assert f"{size:.1f} MiB" in big.stderr and "0.1 MiB limit" in big.stderr
    bomb = faced("detect", str(world.root / "bomb.png"), env={"FACED_IMAGES_MAX_PIXELS": "400000000"})
    assert "decompression bomb" in bomb.stderr and "DecompressionBomb" not in bomb.stderr
    hint = faced("--db", str(world.db), "persons", "add", "--collection", "nope", "--name", "B",
                 str(world.examples / "biden.jpg"))
    assert "faced collections create nope" in hint.stderr


def test_read_only_database_serves_read_commands_unchanged(world: World):
    path = world.root / "readonly.db"
    digest = sha256(path)
    for args in (["collections", "list", "--json"], ["persons", "list", "--collection", "home", "--json"],
                 ["search", str(world.examples / "obama2.jpg"), "--collection", "home", "--json"],
                 ["doctor", "--json"]):
        result = faced("--db", str(path), *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
    found = json.loads(faced("--db", str(path), "search", str(world.examples / "obama2.jpg"), "--collection",
                             "home", "--json").stdout)
    assert found["person_search_results"][0]["person_name"] == "Obama"
    assert sha256(path) == digest


def test_foreign_file_is_refused_and_unmarked_faced_file_is_marked(world: World, tmp_path):
    other = world.root / "other-app.db"
    for args in (["collections", "list"], ["collections", "create", "c"]):
        result = faced("--db", str(other), *args)
        assert result.returncode == 1 and "NOT_A_FACED_DB" in result.stderr
    with sqlite3.connect(other) as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"invoices"}
    # An existing install's file, made before faced marked its files: accepted, and marked on its first write.
    old = tmp_path / "old.db"
    old.write_bytes(world.db.read_bytes())
    with sqlite3.connect(old) as connection:
        connection.execute("PRAGMA application_id = 0")
    assert faced("--db", str(old), "collections", "list").returncode == 0
    assert faced("--db", str(old), "collections", "create", "more").returncode == 0
    with sqlite3.connect(old) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == 0x66616365


def test_names_are_normalised_the_same_on_creation_and_lookup(tmp_path, world: World):
    db = tmp_path / "names.db"
    assert faced("--db", str(db), "collections", "create", "  padded ").returncode == 0
    listed = json.loads(faced("--db", str(db), "collections", "list", "--json").stdout)
    assert [c["collection_name"] for c in listed] == ["padded"]
    decomposed = "Cafe\u0301"  # "Café" with a combining accent: NFC makes it one character
    assert faced("--db", str(db), "collections", "create", decomposed).returncode == 0
    again = faced("--db", str(db), "collections", "create", "Caf\u00e9")
    assert again.returncode == 1 and "COLLECTION_EXISTS" in again.stderr
    markup = "<img src=x onerror=alert(1)>"
    added = faced("--db", str(db), "persons", "add", "--collection", " padded", "--name", markup, "--json",
                  str(world.examples / "biden.jpg"))
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["person_name"] == markup
    assert faced("--db", str(db), "collections", "create", "Padded").returncode == 0  # case-sensitive


def test_enroll_lists_bad_folders_and_adds_only_new_photos(tmp_path, world: World):
    db = tmp_path / "enroll.db"
    folder = tmp_path / "people"
    for name, photos in {"Obama": ["obama.jpg"], "Bid\x07en": ["biden.jpg"], "Empty": []}.items():
        (folder / name).mkdir(parents=True)
        for photo in photos:
            (folder / name / photo).symlink_to(world.examples / photo)
    assert faced("--db", str(db), "collections", "create", "c").returncode == 0
    first = faced("--db", str(db), "enroll", str(folder), "--collection", "c", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert [p["person_name"] for p in summary["persons"]] == ["Obama"] and summary["accepted"] == 1
    codes = {Path(r["source"]).name: r["code"] for r in summary["rejected"]}
    assert codes == {"Bid\x07en": "INVALID_NAME", "Empty": "NO_PHOTOS"}
    # Again with one new photo of Obama: it joins the same person; the known photo is skipped, not refused.
    (folder / "Obama" / "obama2.jpg").symlink_to(world.examples / "obama2.jpg")
    second = json.loads(faced("--db", str(db), "enroll", str(folder), "--collection", "c", "--json").stdout)
    assert second["accepted"] == 1 and second["skipped"] == 1
    assert second["persons"][0]["person_id"] == summary["persons"][0]["person_id"]
    assert not [r for r in second["rejected"] if r.get("code") == "DUPLICATE_OF_OTHER_PERSON"]
    persons = json.loads(faced("--db", str(db), "persons", "list", "--collection", "c", "--json").stdout)
    assert len(persons) == 1 and len(persons[0]["face_ids"]) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_on_a_port_in_use(world: World):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = faced("--db", str(world.db), "run", "--port", str(port))
    _check_failure(result, Case("port in use", [], "ADDRESS_IN_USE"))


BUSY_HOLDER = r"""
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE" if sys.argv[2] == "write" else "BEGIN")
connection.execute("SELECT count(*) FROM persons").fetchone()
print("holding", flush=True)
time.sleep(float(sys.argv[3]))
"""


@pytest.mark.parametrize("hold", ["write", "read"])
def test_a_write_behind_a_long_transaction_says_db_busy(hold, tmp_path, world: World):
    db = tmp_path / "busy.db"
    db.write_bytes(world.db.read_bytes())
    holder = subprocess.Popen([sys.executable, "-c", BUSY_HOLDER, str(db), hold, "60"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        person = json.loads(faced("--db", str(db), "persons", "list", "--collection", "home",
                                  "--json").stdout)[0]["person_id"]
        # A writer waits for the writer; an erasure's checkpoint waits for the reader of an older snapshot.
        args = ["collections", "create", "more"] if hold == "write" else ["persons", "delete", person]
        result = faced("--db", str(db), *args, env={"FACED_STORE_BUSY_TIMEOUT_S": "1"})
    finally:
        holder.kill()
        holder.wait()
    _check_failure(result, Case("busy", [], "DB_BUSY"))


def test_log_level_any_case_and_quiet_stderr(world: World):
    ok = faced("--log-level", "warning", "detect", "--json", str(world.examples / "obama.jpg"))
    assert ok.returncode == 0 and ok.stderr == ""  # no TFLite banner off a terminal
    debug = faced("--log-level", "debug", "detect", "--json", str(world.examples / "obama.jpg"))
    assert debug.returncode == 0
    assert faced("--log-level", "loud", "doctor").returncode == 2


def test_every_option_and_argument_has_help():
    from device.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if action.dest in ("help",) or isinstance(action, _subparsers_type()):
                if isinstance(action, _subparsers_type()):
                    for name, sub in action.choices.items():
                        yield from walk(sub, f"{path} {name}")
                continue
            yield path, action

    missing = [f"{path}: {'/'.join(action.option_strings) or action.dest}" for path, action in
               walk(build_parser(), "faced") if not action.help]
    assert not missing, missing


def _subparsers_type():
    import argparse

    return argparse._SubParsersAction

