"""The URL fetcher of contracts 3 and 4: downloads one image or video for a request without opening the
appliance to the classic attacks on URL fetchers (server-side request forgery, DNS rebinding, endless or huge
downloads). Every refusal is a FacedError whose code says why.

Rules, in the order they are checked:
1. `api.url_inputs` off (the default): URL_INPUT_DISABLED, before the URL is even parsed.
2. http:// and https:// only (URL_SCHEME_REFUSED); a URL without a host, with a user name or password, or
   with a bad port: URL_INVALID.
3. The host must be on `api.url_allow_hosts` (exact, case-insensitive; an IPv6 address without brackets; any
   port): URL_HOST_NOT_ALLOWED. A host that is not allowed is never resolved.
4. faced resolves the host itself and checks EVERY address: loopback, private, link-local, multicast,
   unspecified, reserved and other non-global addresses (IPv4-mapped IPv6 ones by their IPv4 address) are
   refused, URL_ADDRESS_REFUSED, unless that exact address is on the allow-list (allow-listing an address
   is trusting it, whichever allowed name resolves to it).
5. The connection goes to a checked address, and the request carries the name in its Host header and TLS SNI
   (certificates are verified against the name): no second DNS lookup, so DNS rebinding cannot switch the
   address after the check.
6. Redirects (301, 302, 303, 307, 308; at most MAX_REDIRECTS) go through rules 2-5 again at every hop.
7. Time: `api.url_connect_timeout_s` per connection, `api.url_total_timeout_s` for the whole download,
   redirects included (URL_TIMEOUT). Size: `api.url_max_bytes`, from Content-Length before reading and while
   streaming; at most url_max_bytes + 1 body bytes are ever read (URL_TOO_LARGE).
8. The bytes must be an image or a video by their magic numbers (`sniff`), and a declared Content-Type other
   than application/octet-stream must agree with them (URL_CONTENT_REFUSED). Any other failure (no answer,
   an HTTP error status, a TLS failure) is URL_FETCH_FAILED.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urljoin, urlsplit

from ..errors import FacedError

MAX_REDIRECTS = 3
CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Fetched:
    data: bytes
    kind: str  # "image" or "video"
    url: str  # the final URL, after redirects


def sniff(data: bytes) -> str | None:
    """"image", "video" or None, from the first bytes (never from a name, an extension or a header)."""
    head = data[:16]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00",
                        b"MM\x00*")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free") \
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"  # MP4/MOV (ISO base media), AVI, Matroska/WebM
    return None


def refused_address(address: str, allowed: set[str]) -> bool:
    """Whether a resolved address must not be reached: anything that is not a global unicast address (loopback,
    private, link-local, multicast, unspecified, reserved, shared, ...) unless allow-listed exactly."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if str(ip) in allowed:
        return False
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def _allowed(settings) -> set[str]:
    """The allow-list, lower-case; addresses in their canonical form."""
    result = set()
    for entry in settings.url_allow_hosts:
        entry = entry.strip().lower().strip("[]")
        try:
            result.add(str(ipaddress.ip_address(entry)))
        except ValueError:
            result.add(entry.rstrip("."))
    return result


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a checked address; Host is the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI, Host and the certificate check use the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def connect(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    kind = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    connection = kind(host, port, address, timeout)
    connection.connect()
    return connection


class Fetcher:
    """One fetcher per configuration. `resolver` and `connector` are replaceable for tests (the defaults are
    the real DNS and sockets)."""

    def __init__(self, settings, resolver: Callable[[str, int], list[str]] = resolve,
                 connector: Callable[..., http.client.HTTPConnection] = connect):
        self.settings = settings
        self.resolver = resolver
        self.connector = connector

    def fetch(self, url: str) -> Fetched:
        settings = self.settings
        if not settings.url_inputs:
            raise FacedError("URL inputs are off on this device (api.url_inputs = false): send the media as "
                             "base64", "URL_INPUT_DISABLED")
        deadline = time.monotonic() + settings.url_total_timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port, target = self.check_url(url)
            address = self.check_addresses(host, port)
            connection = self._open(scheme, host, port, address, deadline)
            try:
                response = self._get(connection, host, target, deadline)
                if response.status in REDIRECTS and response.getheader("Location"):
                    url = urljoin(url, response.getheader("Location").strip())
                    continue
                if not 200 <= response.status < 300:
                    raise FacedError(f"the server answered HTTP {response.status} {response.reason}",
                                     "URL_FETCH_FAILED")
                data = self._read(connection, response, deadline)
                return Fetched(data, self._check_content(response, data), url)
            finally:
                connection.close()
        raise FacedError(f"more than {MAX_REDIRECTS} redirects", "URL_FETCH_FAILED")

    # ------------------------------------------------------------------------------------ checks
    def check_url(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path?query) of an acceptable URL, else the refusal."""
        if not isinstance(url, str) or not url.strip() or len(url) > 4096:
            raise FacedError("Invalid URL format", "URL_INVALID")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise FacedError("Invalid URL format", "URL_INVALID") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FacedError(f"only http:// and https:// URLs are fetched, not {scheme or 'a relative'} URL",
                             "URL_SCHEME_REFUSED")
        host = (parts.hostname or "").rstrip(".").lower()
        if not host or parts.username is not None or parts.password is not None:
            raise FacedError("Invalid URL format: a URL needs a host and no user name or password",
                             "URL_INVALID")
        try:
            canonical = str(ipaddress.ip_address(host))
        except ValueError:
            canonical = host
        if canonical not in _allowed(self.settings):
            raise FacedError(f"the host {host!r} is not on api.url_allow_hosts", "URL_HOST_NOT_ALLOWED")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return scheme, host, port or (443 if scheme == "https" else 80), target

    def check_addresses(self, host: str, port: int) -> str:
        """Resolve once and check every address; the first one is the one connected to."""
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise FacedError(f"the host {host!r} cannot be resolved ({exc})", "URL_FETCH_FAILED") from None
        if not addresses:
            raise FacedError(f"the host {host!r} has no address", "URL_FETCH_FAILED")
        allowed = _allowed(self.settings)
        bad = [a for a in addresses if refused_address(a, allowed)]
        if bad:
            raise FacedError(f"the host {host!r} resolves to {bad[0]}, a non-public address that is not on "
                             "api.url_allow_hosts", "URL_ADDRESS_REFUSED")
        return addresses[0]

    # -------------------------------------------------------------------------------- transfer
    def _remaining(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FacedError(f"the download took longer than {self.settings.url_total_timeout_s} s "
                             "(api.url_total_timeout_s)", "URL_TIMEOUT")
        return left

    def _open(self, scheme, host, port, address, deadline) -> http.client.HTTPConnection:
        timeout = min(self.settings.url_connect_timeout_s, self._remaining(deadline))
        try:
            return self.connector(scheme, host, port, address, timeout)
        except (socket.timeout, TimeoutError):
            raise FacedError(f"no connection to {host} within {timeout:.1f} s (api.url_connect_timeout_s)",
                             "URL_TIMEOUT") from None
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise FacedError(f"no connection to {host}: {exc}", "URL_FETCH_FAILED") from None

    def _get(self, connection, host: str, target: str, deadline: float) -> http.client.HTTPResponse:
        try:
            connection.sock.settimeout(self._remaining(deadline))
            connection.request("GET", target, headers={"User-Agent": "faced", "Accept": "image/*, video/*",
                                                       "Accept-Encoding": "identity"})
            return connection.getresponse()
        except (socket.timeout, TimeoutError):
            raise self._timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            raise FacedError(f"the request to {host} failed: {exc}", "URL_FETCH_FAILED") from None

    def _timeout(self) -> FacedError:
        return FacedError(f"the download took longer than {self.settings.url_total_timeout_s} s "
                          "(api.url_total_timeout_s)", "URL_TIMEOUT")

    def _read(self, connection, response, deadline: float) -> bytes:
        limit = self.settings.url_max_bytes
        too_large = FacedError(f"the download is over the {limit} byte limit (api.url_max_bytes)", "URL_TOO_LARGE")
        length = response.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > limit:
            raise too_large
        parts, total = [], 0
        try:
            while True:
                connection.sock.settimeout(self._remaining(deadline))
                chunk = response.read1(min(CHUNK, limit + 1 - total))
                if not chunk:
                    break
                total += len(chunk)
                parts.append(chunk)
                if total > limit:
                    raise too_large
                self._remaining(deadline)
        except (socket.timeout, TimeoutError):
            raise self._timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            raise FacedError(f"the download broke off: {exc}", "URL_FETCH_FAILED") from None
        return b"".join(parts)

    @staticmethod
    def _check_content(response, data: bytes) -> str:
        kind = sniff(data)
        if kind is None:
            raise FacedError("the downloaded bytes are not an image or a video", "URL_CONTENT_REFUSED")
        declared = (response.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
        if declared and declared not in ("application/octet-stream", "binary/octet-stream") \
                and not declared.startswith(kind + "/"):
            raise FacedError(f"the server says {declared}, the bytes are an {kind}", "URL_CONTENT_REFUSED")
        return kind
