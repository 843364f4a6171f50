"""URL inputs refused on the live server: only `localhost` is allow-listed (by name, not by address), so the
address check must refuse it; every other target is refused before a connection is made."""
from __future__ import annotations

import base64

import pytest

API_CONFIG = {"url_inputs": True, "url_allow_hosts": ["localhost"], "url_total_timeout_s": 5.0}


@pytest.mark.parametrize("template, code", [
    ("http://127.0.0.1:{port}/file/x.jpg", "URL_HOST_NOT_ALLOWED"),
    ("http://[::1]:{port}/file/x.jpg", "URL_HOST_NOT_ALLOWED"),
    ("http://10.0.0.1/x.jpg", "URL_HOST_NOT_ALLOWED"),
    ("http://169.254.169.254/latest/meta-data/", "URL_HOST_NOT_ALLOWED"),
    ("http://localhost:{port}/file/x.jpg", "URL_ADDRESS_REFUSED"),  # allowed name, loopback address
    ("https://localhost:{port}/file/x.jpg", "URL_ADDRESS_REFUSED"),
    ("file:///etc/passwd", "URL_SCHEME_REFUSED"),
    ("ftp://localhost/x.jpg", "URL_SCHEME_REFUSED"),
    ("http://user:secret@localhost:{port}/x.jpg", "URL_INVALID"),
    ("http:///x.jpg", "URL_INVALID"),
])
def test_refused_without_a_connection(api, media_server, template, code):
    url = template.format(port=media_server.port)
    status, body, _ = api.post("/face/detect", {"url": url}, {"x-api-key": api.key})
    assert (status, body["error_code"], body["code"]) == (400, 1, code), body
    basic = base64.b64encode(f"{api.key_name}:{api.key}".encode()).decode()
    if url.startswith("http"):  # contract 3 takes URLs through the same fetcher
        status, body, _ = api.post("/api/v1/face/detect", {"faceImageBase": url}, {"Authorization": f"Basic {basic}"})
        assert (status, body["hasError"], body["error"]) == (400, True, code), body
    assert media_server.connections == 0
