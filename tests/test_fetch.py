"""The URL fetcher's rules in-process (device/api/fetch.py). No traffic leaves loopback: names are resolved by
a fake resolver, and for non-public addresses the tests assert that no connection is even attempted."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from device.api.fetch import Fetcher, connect, refused_address, sniff
from device.errors import FacedError


def settings(**values):
    base = dict(url_inputs=True, url_allow_hosts=[], url_connect_timeout_s=2.0, url_total_timeout_s=5.0,
                url_max_bytes=1024 * 1024)
    base.update(values)
    return SimpleNamespace(**base)


class Spy:
    """A resolver and a connector that record their calls; the connector refuses to connect anywhere but
    127.0.0.1 (the local media server)."""

    def __init__(self, addresses: dict[str, list[str]]):
        self.addresses = addresses
        self.resolved: list[str] = []
        self.connected: list[tuple] = []

    def resolve(self, host, port):
        self.resolved.append(host)
        return self.addresses[host]

    def connect(self, scheme, host, port, address, timeout):
        self.connected.append((scheme, host, port, address))
        assert address == "127.0.0.1", f"a test tried to connect to {address}"
        return connect(scheme, host, port, address, timeout)


def code_of(fetcher, url) -> str:
    with pytest.raises(FacedError) as error:
        fetcher.fetch(url)
    return error.value.code


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.0.5", "192.168.1.2",
                                     "169.254.169.254", "fe80::1", "fc00::1", "0.0.0.0", "::", "224.0.0.1",
                                     "ff02::1", "100.64.0.1", "240.0.0.1", "255.255.255.255", "::ffff:127.0.0.1",
                                     "::ffff:10.0.0.1"])
def test_non_public_addresses_refused(address):
    assert refused_address(address, set())
    assert not refused_address(address.replace("::ffff:", ""), {address.replace("::ffff:", "")})


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::6810:85e5"])
def test_public_addresses_pass(address):
    assert not refused_address(address, set())  # pure address arithmetic: nothing is contacted


@pytest.mark.parametrize("resolved", [["10.0.0.1"], ["169.254.169.254"], ["93.184.216.34", "127.0.0.1"],
                                      ["::1"], ["::ffff:192.168.0.1"]])
def test_name_resolving_to_a_refused_address_is_never_connected(resolved):
    spy = Spy({"media.example": resolved})
    fetcher = Fetcher(settings(url_allow_hosts=["media.example"]), spy.resolve, spy.connect)
    assert code_of(fetcher, "http://media.example/clip.mp4") == "URL_ADDRESS_REFUSED"
    assert spy.resolved == ["media.example"] and spy.connected == []


def test_literal_private_addresses_never_connected():
    spy = Spy({})
    fetcher = Fetcher(settings(url_allow_hosts=["media.example"]), spy.resolve, spy.connect)
    for url in ("http://10.0.0.1/a.jpg", "http://169.254.169.254/", "http://[::1]/", "http://127.0.0.1/"):
        assert code_of(fetcher, url) == "URL_HOST_NOT_ALLOWED"
    assert spy.resolved == [] and spy.connected == []  # a host that is not allowed is not even resolved


def test_off_refuses_before_anything():
    spy = Spy({"media.example": ["127.0.0.1"]})
    fetcher = Fetcher(settings(url_inputs=False, url_allow_hosts=["media.example"]), spy.resolve, spy.connect)
    assert code_of(fetcher, "http://media.example/a.jpg") == "URL_INPUT_DISABLED"
    assert spy.resolved == [] and spy.connected == []


def test_connection_pinned_to_the_checked_address(media_server, faces_dir):
    """The name is resolved once; the connection goes to that address with the name as Host."""
    media_server.files["face.jpg"] = (faces_dir / "face_recognition/examples/obama.jpg").read_bytes()
    media_server.types["face.jpg"] = "image/jpeg"
    spy = Spy({"media.example": ["127.0.0.1"]})
    fetcher = Fetcher(settings(url_allow_hosts=["media.example", "127.0.0.1"]), spy.resolve, spy.connect)
    fetched = fetcher.fetch(f"http://media.example:{media_server.port}/redirect?to=/file/face.jpg")
    assert fetched.kind == "image" and fetched.data == media_server.files["face.jpg"]
    assert spy.resolved == ["media.example", "media.example"]  # once per hop, never again for the connection
    assert [c[3] for c in spy.connected] == ["127.0.0.1", "127.0.0.1"]
    assert media_server.requests[-1] == ("/file/face.jpg", f"media.example:{media_server.port}")


def test_redirect_to_a_refused_address_is_not_followed(media_server):
    spy = Spy({"media.example": ["127.0.0.1"], "evil.example": ["169.254.169.254"]})
    fetcher = Fetcher(settings(url_allow_hosts=["media.example", "evil.example", "127.0.0.1"]), spy.resolve,
                      spy.connect)
    url = f"http://media.example:{media_server.port}/redirect?to=http://evil.example/latest/meta-data/"
    assert code_of(fetcher, url) == "URL_ADDRESS_REFUSED"
    assert [c[3] for c in spy.connected] == ["127.0.0.1"]


def test_size_limit_while_streaming(media_server):
    fetcher = Fetcher(settings(url_allow_hosts=["127.0.0.1"], url_max_bytes=200_000))
    assert code_of(fetcher, media_server.url("/endless")) == "URL_TOO_LARGE"
    assert media_server.endless_done.wait(30)


def test_sniff():
    assert sniff(b"\xff\xd8\xff\xe0" + bytes(20)) == "image"
    assert sniff(b"\x89PNG\r\n\x1a\n" + bytes(8)) == "image"
    assert sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image"
    assert sniff(b"\0\0\0\x20ftypisom\0\0\0\0") == "video"
    assert sniff(b"RIFF\0\0\0\0AVI LIST") == "video"
    assert sniff(b"\x1a\x45\xdf\xa3" + bytes(12)) == "video"
    assert sniff(b"<html><body>") is None and sniff(b"") is None
