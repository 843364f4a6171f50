"""`faced bench api`: the real server (`faced run` in a subprocess on 127.0.0.1), each endpoint driven by N
concurrent clients with real photos: requests/s, p50/p95 latency and status counts per endpoint and client
count, and the server's peak RSS (VmHWM of its process, all models loaded).

The server gets its own temporary database with one key and a collection of the photos' persons. Its pool is
sized so that the clients' requests queue instead of being refused (`--workers`, `--queue`); 503s, if any,
are counted, not timed.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .errors import FacedError


def add_arguments(parser) -> None:
    parser.add_argument("--clients", default="1,16", help="concurrent client counts (default 1,16)")
    parser.add_argument("--requests", type=int, default=48, help="requests per endpoint and client count "
                                                                 "(default 48)")
    parser.add_argument("--endpoints", default="all", help="comma list of endpoint names (default all)")
    parser.add_argument("--workers", type=int, default=2, help="server api.workers (default 2)")
    parser.add_argument("--queue", type=int, default=32, help="server api.queue (default 32)")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON")


def _photos() -> dict:
    from .measure import data_file

    faces = data_file("faces")
    names = {"obama": "face_recognition/examples/obama.jpg", "obama2": "face_recognition/examples/obama2.jpg",
             "obama480": "face_recognition/examples/obama-480p.jpg", "biden": "face_recognition/examples/biden.jpg",
             "two": "face_recognition/examples/two_people.jpg", "group": "dlib/examples/faces/2008_002079.jpg"}
    paths = {k: faces / v for k, v in names.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FacedError(f"benchmark photos not found ({missing[0]}): set FACED_TEST_DATA", "NO_DATA")
    return {k: base64.b64encode(p.read_bytes()).decode("ascii") for k, p in paths.items()}


def _endpoints(photos: dict, key: str, token_of) -> dict:
    """name -> (path, body, headers); token_of() gives contract 1 a fresh authkey."""
    basic = "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()
    return {
        "face-search": ("/face-search", {"collection_name": "bench", "face_base_64": photos["obama480"]},
                        {"x-api-key": key}),
        "multi-face-search": ("/multi-face-search", {"collection_name": "bench",
                                                     "multi_face_img_base_64": photos["group"]}, {"x-api-key": key}),
        "MultiFaceExtraction": ("/MultiFaceExtraction", {"rrn": "1", "image": photos["group"]},
                                {"apikey": "0", "authkey": token_of()}),
        "api/v1/face/detect": ("/api/v1/face/detect", {"sessionId": "b", "faceImageBase": photos["obama"]},
                               {"Authorization": basic}),
        "face/detect": ("/face/detect", {"img": photos["two"]}, {"Authorization": f"Bearer {key}"}),
        "face/verify": ("/face/verify", {"encoded_image1": photos["obama"], "encoded_image2": photos["obama2"]},
                        {"Subscriptionkey": key}),
        "health": ("/health", None, {}),
    }


class _Server:
    def __init__(self, folder: Path, workers: int, queue: int):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.db = folder / "bench.db"
        config = folder / "bench.toml"
        config.write_text(f"[api]\nport = {self.port}\nworkers = {workers}\nqueue = {queue}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACED_") or k == "FACED_TEST_DATA"}
        base = [sys.executable, "-m", "device.cli", "--config", str(config), "--db", str(self.db)]
        created = subprocess.run(base + ["keys", "create", "--name", "bench"], capture_output=True, text=True,
                                 env=env)
        if created.returncode:
            raise FacedError(f"cannot create a key: {created.stderr.strip()}", "INTERNAL_ERROR")
        self.key = created.stdout.strip().splitlines()[-1]
        self.log = open(folder / "server.log", "wb")
        self.process = subprocess.Popen(base + ["run"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/health", None, {})[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise FacedError("the server did not start", "INTERNAL_ERROR")

    def call(self, method: str, path: str, body, headers: dict) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            connection.request(method, path, None if body is None else json.dumps(body).encode(),
                               {"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _drive(server: _Server, path: str, body, headers: dict, clients: int, total: int) -> dict:
    latencies, statuses, lock = [], {}, threading.Lock()
    counter = iter(range(total))

    def client():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            started = time.perf_counter()
            status, _ = server.call("POST" if body is not None else "GET", path, body, headers)
            elapsed = time.perf_counter() - started
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status < 300:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    percentile = lambda q: 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None  # noqa
    return {"clients": clients, "requests": total, "ok": len(latencies), "statuses": statuses,
            "requests_per_s": round(len(latencies) / wall, 2) if wall else None,
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "p95_ms": round(percentile(0.95), 1) if ordered else None}


def run(args, config) -> int:
    photos = _photos()
    clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="faced-bench-api-") as folder:
        server = _Server(Path(folder), args.workers, args.queue)
        try:
            key = server.key
            server.call("POST", "/collections", {"collection_name": "bench"}, {"x-api-key": key})
            for name, photo in (("Obama", ["obama", "obama2"]), ("Biden", ["biden"])):
                server.call("POST", "/persons", {"collection_name": "bench", "person_name": name,
                                                 "images_base_64": [photos[p] for p in photo]}, {"x-api-key": key})
            token = lambda: server.call("POST", "/userauthentication", None, {"apikey": key})[1]["authkey"]  # noqa
            endpoints = _endpoints(photos, key, token)
            wanted = list(endpoints) if args.endpoints == "all" else args.endpoints.split(",")
            rows = []
            for name in wanted:
                path, body, headers = endpoints[name]
                server.call("POST" if body is not None else "GET", path, body, headers)  # warm-up
                for count in clients:
                    rows.append({"endpoint": name, **_drive(server, path, body, headers, count, args.requests)})
                    print(_row_text(rows[-1]), flush=True)
            report = {"rows": rows, "server_peak_rss_mb": round(server.peak_rss_mb(), 1),
                      "workers": args.workers, "queue": args.queue, "cpus": os.cpu_count()}
        finally:
            server.stop()
    print(f"server peak RSS (VmHWM, all models loaded): {report['server_peak_rss_mb']} MB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _row_text(row: dict) -> str:
    statuses = " ".join(f"{k}:{v}" for k, v in sorted(row["statuses"].items()))
    return (f"{row['endpoint']:<22} clients {row['clients']:>3}  {row['requests_per_s'] or 0:>7.1f} req/s  "
            f"p50 {row['p50_ms'] or 0:>7.1f} ms  p95 {row['p95_ms'] or 0:>7.1f} ms  [{statuses}]")
