"""Credentials on every endpoint, keys never logged, body limits (413 before the body), the bounded pool
(only 200/503 under load, Retry-After, /health meanwhile), revocation."""
from __future__ import annotations

import base64
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import b64file

API_CONFIG = {"workers": 1, "queue": 1, "max_body_bytes": 4 * 1024 * 1024}

# endpoint -> (method, path, the credential headers that carry a wrong key, how the contract says "code")
WRONG = "not-a-key"
ENDPOINTS = [
    ("POST", "/face-search", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("POST", "/multi-face-search", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("POST", "/api/v1/face/detect", {"Authorization": "Basic " + base64.b64encode(b"tests:" + WRONG.encode()).decode()},
     lambda b: b["error"], {401: "API_KEY_MISSING", 403: "API_KEY_INVALID"}),
    ("POST", "/face/detect", {"Authorization": "Bearer " + WRONG}, lambda b: b["code"],
     {401: "API_KEY_MISSING", 403: "API_KEY_INVALID"}),
    ("POST", "/face/verify", {"Subscriptionkey": WRONG}, lambda b: b["errorCode"],
     {401: "API_KEY_MISSING", 403: "API_KEY_INVALID"}),
    ("POST", "/userauthentication", {"apikey": WRONG}, lambda b: b["respcode"], {401: "401", 403: "403"}),
    ("POST", "/collections", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("GET", "/collections", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("DELETE", "/collections/x", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("POST", "/persons", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("GET", "/persons?collection_name=x", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("GET", "/persons/p", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("PATCH", "/persons/p", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("DELETE", "/persons/p", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("POST", "/persons/p/faces", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("DELETE", "/persons/p/faces/1", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("GET", "/openapi.json", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
    ("GET", "/metrics", {"x-api-key": WRONG}, lambda b: b["code"],
     {401: "ERR_API_KEY_NOT_PRESENT", 403: "ERR_API_KEY_NOT_VALID"}),
]


def test_missing_and_wrong_credential_everywhere(api):
    body = {"collection_name": "x"}
    for method, path, wrong, code_of, codes in ENDPOINTS:
        for headers, status in (({}, 401), (wrong, 403)):
            got, answer, _ = api.request(method, path, body if method in ("POST", "PATCH") else None, headers)
            assert got == status, (method, path, answer)
            assert code_of(answer) == codes[status], (method, path, answer)
    # contract 1's extraction: no token or a bad one is 401 with respcode "401"
    for headers in ({}, {"authkey": WRONG}):
        got, answer, _ = api.post("/MultiFaceExtraction", {"rrn": "1", "image": "x"}, headers)
        assert (got, answer["respcode"]) == (401, "401")
    assert api.get("/health")[0] == 200  # open


def test_keys_never_logged(api):
    api.post("/face-search", {"collection_name": "x"}, {"x-api-key": api.key})
    api.post("/face/verify", {}, {"Subscriptionkey": api.key + "x"})
    status, body, _ = api.post("/userauthentication", None, {"apikey": api.key})
    api.post("/MultiFaceExtraction", {"rrn": "1"}, {"authkey": body["authkey"]})
    api.post("/MultiFaceExtraction", {"rrn": "1"}, {"authkey": body["authkey"] + "x"})
    time.sleep(0.5)
    log = api.log_path.read_bytes()
    assert b"POST /face-search" in log  # the log is written (DEBUG) ...
    assert api.key.encode() not in log and body["authkey"].encode() not in log  # ... without keys or tokens
    assert api.key[:16].encode() not in log


def raw_headers(api, head: bytes) -> bytes:
    """Send only a request head over a raw socket and read the answer (no body byte is ever sent)."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
        sock.sendall(head)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_413_before_the_body(api):
    head = (f"POST /face-search HTTP/1.1\r\nHost: x\r\nx-api-key: {api.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 ** 9}\r\n\r\n").encode()
    answer = raw_headers(api, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"ERR_BODY_TOO_LARGE" in answer


def test_413_while_streaming_without_length(api):
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
        sock.sendall(f"POST /face/verify HTTP/1.1\r\nHost: x\r\nSubscriptionkey: {api.key}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            for _ in range(200):  # 12.5 MiB, over this server's 4 MiB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server answered and closed while we were still sending
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"BODY_TOO_LARGE" in answer


def test_pool_full_gives_503_with_retry_after_and_health_answers(api, faces_dir):
    group = b64file(faces_dir / "dlib/examples/faces/2008_002079.jpg")
    body = {"img": group}
    health_times, stop = [], threading.Event()

    def poll_health():
        while not stop.is_set():
            started = time.monotonic()
            status = api.get("/health")[0]
            health_times.append((status, time.monotonic() - started))
            time.sleep(0.05)

    watcher = threading.Thread(target=poll_health)
    watcher.start()
    try:
        with ThreadPoolExecutor(16) as clients:
            answers = list(clients.map(lambda _: api.post("/face/detect", body, {"x-api-key": api.key}), range(48)))
    finally:
        stop.set()
        watcher.join()
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses and 503 in statuses
    for status, answer, headers in answers:
        if status == 503:
            assert int(headers["Retry-After"]) >= 1 and answer["code"] == "BUSY" and answer["error_code"] == 1
    assert health_times and all(status == 200 for status, _ in health_times)
    # The server's peak resident size under that load (all models loaded), from the kernel's own count.
    peak_kb = next(int(line.split()[1]) for line in open(f"/proc/{api.process.pid}/status")
                   if line.startswith("VmHWM:"))
    assert peak_kb < 300 * 1024, f"server peak RSS {peak_kb / 1024:.0f} MB"
    metrics = api.get("/metrics", {"x-api-key": api.key})[1]
    assert 'faced_http_busy_rejections_total{reason="busy"}' in metrics
    assert 'faced_http_requests_total{endpoint="/face/detect",method="POST",status="503"}' in metrics
    assert "faced_pool_depth" in metrics and "faced_faces_processed_total" in metrics


def test_revoked_key_is_refused(api):
    created = api.faced("keys", "create", "--name", "temporary")
    key = created.stdout.strip().splitlines()[-1]
    assert api.get("/collections", {"x-api-key": key})[0] == 200
    token = api.post("/userauthentication", None, {"apikey": key})[1]["authkey"]
    assert api.faced("keys", "revoke", "temporary").returncode == 0
    assert api.get("/collections", {"x-api-key": key})[0] == 403
    got, answer, _ = api.post("/MultiFaceExtraction", {"rrn": "1", "image": "x"}, {"authkey": token})
    assert (got, answer["respcode"]) == (401, "401")
    listed = api.faced("keys", "list", "--json").stdout
    assert "temporary" not in listed and key not in listed and api.key not in listed
