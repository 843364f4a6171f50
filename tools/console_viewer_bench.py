"""What one browser on the console's Cameras page costs the recogniser: `faced run` plays a clip as a looping
camera; the camera's processed frames/s (from GET /cameras's `processed` counter) is measured over alternating
windows with no viewer and with one headless chromium showing /ui/cameras.html (snapshot every ~2 s).

    .venv/bin/python tools/console_viewer_bench.py CLIP [--photo PHOTO] [--window 60] [--rounds 2]

Needs Debian's chromium and playwright (the `test` extra). Prints one JSON object: frames/s per window and the
means with and without a viewer."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def faced(*args: str, env: dict | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True, text=True, env=env,
                          check=True)
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--photo", help="a photo to enrol, so the camera recognises someone")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=20.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="faced-console-bench-"))
    db = folder / "faced.db"
    faced("--db", str(db), "collections", "create", "home")
    if args.photo:
        faced("--db", str(db), "persons", "add", "--collection", "home", "--name", "someone", args.photo)
    key = faced("--db", str(db), "keys", "create", "--name", "bench").strip().splitlines()[-1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = folder / "faced.toml"
    config.write_text(f'[api]\nport = {port}\n[cameras.door]\nsource = {json.dumps(str(Path(args.clip).resolve()))}'
                      '\ncollection = "home"\nliveness = "passive"\nloop = true\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_")}
    log = (folder / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "device.cli", "--config", str(config), "--db", str(db), "run"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def processed() -> tuple[float, int]:
        request = urllib.request.Request(url + "/cameras", headers={"x-api-key": key})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return time.monotonic(), json.loads(answer.read())["cameras"][0]["processed"]

    def rate() -> float:
        t0, n0 = processed()
        time.sleep(args.window)
        t1, n1 = processed()
        return (n1 - n0) / (t1 - t0)

    from playwright.sync_api import sync_playwright

    results: dict = {"none": [], "viewer": []}
    try:
        for _ in range(600):
            try:
                processed()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(args.warmup)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            for _ in range(args.rounds):
                results["none"].append(round(rate(), 2))
                context = browser.new_context(base_url=url)
                page = context.new_page()
                page.goto("/ui/signin.html")
                page.fill("#key", key)
                page.click("button[type=submit]")
                page.wait_for_url("**/people.html")
                page.goto("/ui/cameras.html")
                page.wait_for_selector("li.camera img")
                results["viewer"].append(round(rate(), 2))
                context.close()
            browser.close()
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
    none, viewer = statistics.mean(results["none"]), statistics.mean(results["viewer"])
    print(json.dumps({"window_s": args.window, "fps_no_viewer": results["none"], "fps_one_viewer": results["viewer"],
                      "mean_no_viewer": round(none, 2), "mean_one_viewer": round(viewer, 2),
                      "loss_percent": round(100 * (none - viewer) / none, 1) if none else None}))
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
