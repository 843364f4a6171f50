"""Credentials: every style of the contracts maps onto the same API keys (DESIGN.md "HTTP API").

| style        | where                                     | used by                               |
|--------------|-------------------------------------------|---------------------------------------|
| x-api-key    | `x-api-key: KEY`                          | contract 2, management, /openapi.json, /metrics |
| basic        | `Authorization: Basic base64(NAME:KEY)`   | contract 3                            |
| bearer       | `Authorization: Bearer KEY` (or the bare key), else `x-api-key` | contract 4      |
| subscription | `Subscriptionkey: KEY`                    | contract 5                            |
| authkey      | `authkey: TOKEN` from POST /userauthentication | contract 1                       |
| session      | none: POST /ui/session itself takes the key in its body and sets the cookie | the console |

The web console (device/api/console.py) signs in at POST /ui/session with a key and gets the cookie
`faced_session` (HttpOnly, SameSite=Strict, Max-Age api.session_ttl_s, Secure over TLS) and a CSRF token. Every
x-api-key endpoint then accepts that cookie in place of the header; a state-changing request (not GET, HEAD or
OPTIONS) made with the cookie must also carry the token in `X-CSRF-Token` (CSRF_TOKEN_INVALID, 403). An unknown
or expired cookie without a key is SESSION_INVALID (401). A session dies with its key, like an authkey.

No credential: API_KEY_MISSING (401). A credential that is not a valid key: API_KEY_INVALID (403). An authkey
that is unknown, expired, or whose key was revoked since: TOKEN_INVALID (401, contract 1's own rule). Neither a
key nor a token is ever logged or echoed; keys are compared in constant time (device/store/keys.py).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from ..errors import AuthError

OPEN, X_API_KEY, BASIC, BEARER, SUBSCRIPTION, AUTHKEY, SESSION = "open", "x-api-key", "basic", "bearer", \
    "subscription", "authkey", "session"
MAX_TOKENS = 10_000
COOKIE = "faced_session"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def missing(what: str) -> AuthError:
    return AuthError(f"no credential: send {what}", "API_KEY_MISSING")


def invalid() -> AuthError:
    return AuthError("the credential is not a valid API key", "API_KEY_INVALID")


class Tokens:
    """Contract 1's authkeys: random, in memory only (a restart invalidates them), each tied to the key that
    obtained it, expiring after api.token_ttl_s."""

    def __init__(self, ttl_s: int):
        self.ttl_s = ttl_s
        self._tokens: dict[bytes, tuple[str, float]] = {}  # sha256(token) -> (key name, expiry)
        self._lock = threading.Lock()

    def issue(self, key_name: str) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for digest in [d for d, (_, expiry) in self._tokens.items() if expiry <= now]:
                del self._tokens[digest]
            while len(self._tokens) >= MAX_TOKENS:  # oldest first (dicts keep insertion order)
                del self._tokens[next(iter(self._tokens))]
            self._tokens[hashlib.sha256(token.encode()).digest()] = (key_name, now + self.ttl_s)
        return token

    def check(self, token: str) -> str:
        """The key name the token was issued to; TOKEN_INVALID when unknown or expired."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            entry = self._tokens.get(digest)
            if entry is not None and entry[1] <= time.monotonic():
                del self._tokens[digest]
                entry = None
        if entry is None:
            raise AuthError("the authkey is not valid or has expired: get a new one from POST /userauthentication",
                            "TOKEN_INVALID")
        return entry[0]

    def revoke_key(self, key_name: str) -> None:
        with self._lock:
            for digest in [d for d, (name, _) in self._tokens.items() if name == key_name]:
                del self._tokens[digest]


@dataclass
class Session:
    key_name: str
    csrf: str
    expires: float  # time.monotonic()


class Sessions:
    """The console's sessions: random ids in a cookie, in memory only (a restart signs everyone out), each tied
    to the key that opened it, expiring after api.session_ttl_s. Only sha256 of an id is kept."""

    def __init__(self, ttl_s: int):
        self.ttl_s = ttl_s
        self._sessions: dict[bytes, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()

    def open(self, key_name: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(key_name, secrets.token_urlsafe(32), now + self.ttl_s)
        with self._lock:
            for digest in [d for d, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[digest]
            while len(self._sessions) >= MAX_TOKENS:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[self._digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        digest = self._digest(session_id)
        with self._lock:
            session = self._sessions.get(digest)
            if session is not None and session.expires <= time.monotonic():
                del self._sessions[digest]
                session = None
        return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(self._digest(session_id), None)


def session_cookie(headers) -> str | None:
    """The value of the console's cookie in a request's Cookie header, if any."""
    raw = headers.get("Cookie") or ""
    for part in raw.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


class Authenticator:
    def __init__(self, engine, tokens: Tokens, sessions: Sessions | None = None):
        self.engine = engine
        self.tokens = tokens
        self.sessions = sessions or Sessions(3600)

    def session(self, headers) -> Session | None:
        """The live session of the request's cookie (None without a cookie, or when it is unknown, expired or
        its key was revoked)."""
        session_id = session_cookie(headers)
        session = self.sessions.get(session_id) if session_id else None
        if session is not None and not any(k.name == session.key_name for k in self.engine.keys()):
            self.sessions.close(session_id)
            session = None
        return session

    def key(self, presented: str) -> str:
        """The name of the key `presented` is; API_KEY_INVALID otherwise."""
        name = self.engine.verify_key(presented) if presented else None
        if name is None:
            raise invalid()
        return name

    def check(self, style: str, headers, method: str = "GET") -> str | None:
        """The key name a request's credential belongs to (None for open endpoints)."""
        if style in (OPEN, SESSION):
            return None
        if style == X_API_KEY:
            if not (headers.get("x-api-key") or "").strip() and session_cookie(headers):
                return self.by_session(headers, method)
            return self.key(_header(headers, "x-api-key", "the x-api-key header"))
        if style == SUBSCRIPTION:
            return self.key(_header(headers, "Subscriptionkey", "the Subscriptionkey header"))
        if style == BEARER:
            authorization = (headers.get("Authorization") or "").strip()
            if authorization:
                scheme, _, rest = authorization.partition(" ")
                return self.key(rest.strip() if scheme.lower() == "bearer" else authorization)
            return self.key(_header(headers, "x-api-key", "Authorization: Bearer KEY or the x-api-key header"))
        if style == BASIC:
            return self._basic(headers)
        if style == AUTHKEY:
            token = _header(headers, "authkey", "the authkey header (a token from POST /userauthentication)")
            name = self.tokens.check(token)
            apikey = (headers.get("apikey") or "").strip()
            if apikey and apikey != "0" and self.key(apikey) != name:
                raise invalid()
            if not any(k.name == name for k in self.engine.keys()):  # revoked since the token was issued
                self.tokens.revoke_key(name)
                self.tokens.check(token)
            return name
        raise ValueError(f"unknown credential style {style!r}")

    def by_session(self, headers, method: str) -> str:
        session = self.session(headers)
        if session is None:
            raise AuthError("the console session is unknown or has expired: sign in again", "SESSION_INVALID")
        if method.upper() not in SAFE_METHODS:
            presented = (headers.get("X-CSRF-Token") or "").strip()
            if not presented or not hmac.compare_digest(presented.encode(), session.csrf.encode()):
                raise AuthError("a request with the session cookie that changes something needs the "
                                "X-CSRF-Token header from POST /ui/session", "CSRF_TOKEN_INVALID")
        return session.key_name

    def _basic(self, headers) -> str:
        authorization = (headers.get("Authorization") or "").strip()
        if not authorization:
            raise missing("Authorization: Basic base64(KEY_NAME:KEY)")
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise missing("Authorization: Basic base64(KEY_NAME:KEY)")
        try:
            user, separator, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise invalid() from None
        if not separator:
            raise invalid()
        name = self.key(password)
        if name != user:  # the user name must be the key's name
            raise invalid()
        return name


def _header(headers, name: str, what: str) -> str:
    value = (headers.get(name) or "").strip()
    if not value:
        raise missing(what)
    return value
