"""The web console: static pages under /ui/ and its session (device/api/auth.py "session").

POST   /ui/session {"key"}   201 {"key_name", "csrf_token", "expires_in"}; sets the cookie `faced_session`
                             (HttpOnly, SameSite=Strict, Path=/, Max-Age api.session_ttl_s, Secure over TLS)
GET    /ui/session           the current session's {"key_name", "csrf_token", "expires_in"} (SESSION_INVALID
                             without one): the pages read their CSRF token here, so it is never stored
DELETE /ui/session           signs out (needs X-CSRF-Token); the cookie is cleared
GET    /ui/, /ui/NAME        the pages (HTML, CSS, JavaScript modules in device/api/ui/). A page other than the
                             sign-in page answers 303 to /ui/signin.html without a live session.

Every /ui/ answer carries a Content-Security-Policy without inline scripts or styles (default-src 'self';
frame-ancestors 'none'), X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and
X-Frame-Options: DENY. The pages call the JSON endpoints with the cookie, never with the key; they render names
and metadata with textContent only.
"""
from __future__ import annotations

import time
from importlib import resources

import bottle

from ..errors import AuthError
from . import auth
from .http import Call, Reply, Router

SHAPE = "contract2"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
TYPES = {"html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
         "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"}
SIGN_IN = "signin.html"


def _files() -> dict[str, bytes]:
    """The console's files, read once: name -> bytes (only these names are ever served)."""
    folder = resources.files(__package__) / "ui"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and entry.name.rsplit(".", 1)[-1] in TYPES}


def _session_json(session: auth.Session) -> dict:
    return {"key_name": session.key_name, "csrf_token": session.csrf,
            "expires_in": max(0, int(session.expires - time.monotonic()))}


def register(router: Router) -> None:
    files = _files()
    sessions = router.state.auth.sessions

    def secure() -> bool:
        return bottle.request.environ.get("wsgi.url_scheme") == "https" or bool(router.state.config.api.tls_cert)

    def cookie(value: str, max_age: int) -> str:
        return (f"{auth.COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
                + ("; Secure" if secure() else ""))

    @router.route("POST", "/ui/session", shape=SHAPE, credential=auth.SESSION, body=True)
    def sign_in(call: Call):
        key = call.field("key", "string", required=True)
        name = call.state.auth.key(key.strip())
        session_id, session = sessions.open(name)
        headers = {"Set-Cookie": cookie(session_id, sessions.ttl_s), "Cache-Control": "no-store",
                   **SECURITY_HEADERS}
        return Reply(_session_json(session), 201, headers)

    @router.route("GET", "/ui/session", shape=SHAPE, credential=auth.SESSION)
    def current(call: Call):
        session = call.state.auth.session(call.headers)
        if session is None:
            raise AuthError("no console session: sign in at POST /ui/session", "SESSION_INVALID")
        return Reply(_session_json(session), headers={"Cache-Control": "no-store", **SECURITY_HEADERS})

    @router.route("DELETE", "/ui/session", shape=SHAPE, credential=auth.SESSION)
    def sign_out(call: Call):
        call.state.auth.by_session(call.headers, "DELETE")  # a live session and its CSRF token
        sessions.close(auth.session_cookie(call.headers))
        return Reply({"signed_out": True}, headers={"Set-Cookie": cookie("", 0), **SECURITY_HEADERS})

    app = router.app

    def page(name: str):
        data = files.get(name)
        response = bottle.response
        for header, value in SECURITY_HEADERS.items():
            response.set_header(header, value)
        if data is None:
            response.status = 404
            response.content_type = "text/plain; charset=utf-8"
            return b"no such page"
        if name.endswith(".html"):
            response.set_header("Cache-Control", "no-store")
            if name != SIGN_IN and router.state.auth.session(bottle.request.headers) is None:
                response.status = 303
                response.set_header("Location", f"/ui/{SIGN_IN}")
                return b""
        response.content_type = TYPES[name.rsplit(".", 1)[-1]]
        return data

    app.route("/ui", "GET", lambda: page("people.html"))
    app.route("/ui/", "GET", lambda: page("people.html"))
    app.route("/ui/<name:re:[a-z0-9-]+[.][a-z]+>", "GET", page)
