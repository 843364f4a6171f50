"""The machinery every endpoint shares: credentials, body limits, JSON, the inference pool, error shapes,
metrics and the request log. Each contract module only says what its endpoint does with the engine and how
its answer looks (`Router.route`).

Order of work for a request: credential (cheap, before anything is read) -> a place in the inference pool
(pooled endpoints; 503 + Retry-After when full) -> the body, refused with 413 from its Content-Length before a
byte is read (and while reading when there is none) -> the handler, on a pool worker, within api.timeout_s.
A request answered before its body was read (a refused credential, a full pool) has its body read and dropped
when it is of a known size within the limit, so that the client reads the answer instead of a reset
connection; a larger or chunked one has its connection closed.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import bottle

from ..errors import Busy, CODES, FacedError, InvalidInput
from . import errors as shapes

log = logging.getLogger("faced.api")
READ_CHUNK = 64 * 1024


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200 JSON body."""

    payload: Any = None
    status: int = 200
    headers: dict = field(default_factory=dict)
    content_type: str = "application/json"
    raw: bytes | None = None


@dataclass
class RouteInfo:
    method: str
    path: str  # OpenAPI form: /persons/{person_id}
    shape: str
    credential: str
    pooled: bool


class Call:
    """One request as a handler sees it: the parsed body, path parameters and the engine."""

    def __init__(self, state, params: dict, headers, query):
        self.state = state
        self.engine = state.engine
        self.params = params
        self.headers = headers
        self.query = query
        self.body: dict = {}
        self.echo: dict = {}  # request fields that the error shape repeats (rrn, sessionId, check_liveness)
        self.faces = 0  # faces detected, for the metrics
        self.key_name: str | None = None
        self.admitted = time.monotonic()  # api.timeout_s counts from here
        self.base_url = ""  # scheme://host[:port] the request was sent to (URLs the answer points to)
        self.num_frames = 5

    def field(self, name: str, kind: str, required: bool = False, default: Any = None, lo: float | None = None,
              hi: float | None = None) -> Any:
        """A body field of a JSON type ("string", "boolean", "integer", "number", "object", "array"), checked;
        MISSING_FIELD / INVALID_ARGUMENT otherwise. A JSON null counts as absent."""
        value = self.body.get(name)
        if value is None:
            if required:
                raise InvalidInput(f"the request needs the field {name!r}", "MISSING_FIELD")
            return default
        return check_value(name, value, kind, lo, hi)

    def image(self, name: str, required: bool = True):
        """The decoded image of a base64 (or data-URI) field."""
        text = self.field(name, "string", required=required)
        if text is None:
            return None
        return self.engine.decode_base64(text)


def check_value(name: str, value: Any, kind: str, lo: float | None = None, hi: float | None = None) -> Any:
    types = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float), "object": (dict,),
             "array": (list,)}[kind]
    if not isinstance(value, types) or (kind in ("integer", "number") and isinstance(value, bool)):
        raise InvalidInput(f"the field {name!r} must be a JSON {kind}", "INVALID_ARGUMENT")
    if kind == "number" and not math.isfinite(value):
        raise InvalidInput(f"the field {name!r} must be a finite number", "INVALID_ARGUMENT")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidInput(f"the field {name!r} must be from {lo} to {hi}, got {value!r}", "INVALID_ARGUMENT")
    return value


def read_body(environ: dict, limit: int) -> bytes:
    """The request body, at most `limit` bytes: BODY_TOO_LARGE from Content-Length before reading, or as soon
    as a body without one (chunked) passes the limit."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    too_large = FacedError(f"the request body is over the {limit} byte limit (api.max_body_bytes)", "BODY_TOO_LARGE")
    if length.strip():
        try:
            size = int(length)
        except ValueError:
            raise InvalidInput("the Content-Length header is not a number", "INVALID_ARGUMENT") from None
        if size > limit:
            raise too_large
        data = stream.read(size) if size > 0 else b""
        environ["faced.body_read"] = True
        return data
    parts, total = [], 0
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise too_large
        parts.append(chunk)
    environ["faced.body_read"] = True
    return b"".join(parts)


def _drain(environ: dict) -> None:
    """Read and drop a body of known size within the limit that a refusal left unread."""
    stream, left = environ["wsgi.input"], int((environ.get("CONTENT_LENGTH") or "0").strip() or "0")
    while left > 0:
        chunk = stream.read(min(READ_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
    environ["faced.body_read"] = True


def parse_json(data: bytes) -> dict:
    if not data.strip():
        raise InvalidInput("the request needs a JSON object body", "INVALID_JSON")
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the request body is not valid JSON: {str(exc)[:200]}", "INVALID_JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("the request body must be a JSON object", "INVALID_JSON")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class Router:
    """Registers endpoints on a Bottle app with the shared machinery around each handler."""

    def __init__(self, app: bottle.Bottle, state):
        self.app = app
        self.state = state
        self.routes: list[RouteInfo] = []

    def route(self, method: str, path: str, *, shape: str, credential: str, pooled: bool = False,
              body: bool = False, echo: tuple[str, ...] = ()) -> Callable:
        """`path` in OpenAPI form (/persons/{person_id}); `shape`: the contract whose error shape answers;
        `credential`: device/api/auth.py's style; `pooled`: runs in the inference pool; `body`: reads a JSON
        object body (True) or an optional one ("optional"); `echo`: body fields the error shape repeats."""
        info = RouteInfo(method, path, shape, credential, pooled)
        self.routes.append(info)
        bottle_path = path.replace("{", "<").replace("}", ">")

        def decorator(handler: Callable[[Call], Any]) -> Callable:
            def endpoint(**params):
                return self._serve(info, handler, params, body, echo)

            self.app.route(bottle_path, method, endpoint)
            return handler

        return decorator

    def _serve(self, info: RouteInfo, handler, params: dict, body: bool, echo: tuple[str, ...]):
        state, request = self.state, bottle.request
        started = time.monotonic()
        call = Call(state, params, request.headers, request.query)
        call.base_url = "{}://{}".format(*request.urlparts[:2])
        environ = request.environ
        busy_reason = None
        try:
            call.key_name = state.auth.check(info.credential, request.headers, info.method)
            ticket = state.pool.admit() if info.pooled else None
            try:
                if body:
                    data = read_body(environ, state.config.api.max_body_bytes)
                    call.body = {} if body == "optional" and not data.strip() else parse_json(data)
                    call.echo.update({k: call.body.get(k) for k in echo})
                if ticket is not None:
                    result = ticket.run(lambda: handler(call), state.config.api.timeout_s)
                else:
                    result = handler(call)
            finally:
                if ticket is not None and not ticket._submitted:
                    ticket.release()
            reply = result if isinstance(result, Reply) else Reply(result)
        except FacedError as exc:
            reply = self._error(info, exc, call)
            if isinstance(exc, Busy):
                busy_reason = exc.code.lower()
        except Exception:  # a bug: the contract's error shape, the cause in the log (never the request)
            log.exception("%s %s failed", info.method, info.path)
            reply = self._error(info, FacedError("an internal error occurred; the server log has the cause",
                                                 "INTERNAL_ERROR"), call)
        response = bottle.response
        response.status = reply.status
        response.content_type = reply.content_type
        for name, value in reply.headers.items():
            response.set_header(name, value)
        if not environ.get("faced.body_read"):
            if self._drainable(environ):
                _drain(environ)  # closing with unread bytes would reset the connection before the answer is read
            else:
                close = environ.get("faced.close_connection")  # device/service.py's gateway; absent elsewhere
                if close:
                    close()
        elapsed = time.monotonic() - started
        state.metrics.observe(info.path, info.method, reply.status, elapsed, call.faces, busy_reason)
        log.info("%s %s %d %.0f ms", info.method, info.path, reply.status, elapsed * 1000)
        return reply.raw if reply.raw is not None else dumps(reply.payload)

    def _drainable(self, environ: dict) -> bool:
        """Whether the server may read and drop an unread body to keep the connection (the client may still be
        sending it): only a body of a known size within the limit. A larger one, or a chunked one (which the
        server would not drain), closes the connection instead."""
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return False
        length = (environ.get("CONTENT_LENGTH") or "0").strip() or "0"
        return length.isdigit() and int(length) <= self.state.config.api.max_body_bytes

    def _error(self, info: RouteInfo, exc: FacedError, call: Call) -> Reply:
        status = CODES[exc.code].status
        headers = {}
        if isinstance(exc, Busy):
            headers["Retry-After"] = str(exc.retry_after)
        if status == 401 and info.credential == "basic":
            headers["WWW-Authenticate"] = 'Basic realm="faced"'
        return Reply(shapes.SHAPES[info.shape](exc, call.echo), status, headers)
