"""The daemon: serves the HTTP API on a threaded WSGI server (cheroot) until SIGINT/SIGTERM.

Binding beyond loopback is refused while no API key exists (every endpoint but /health needs one). With
api.tls_cert and api.tls_key the same port speaks HTTPS (cheroot's builtin SSL adapter).
"""
from __future__ import annotations

import errno
import ipaddress
import os
import logging
import signal
import threading
from pathlib import Path

from cheroot import wsgi

from .api.app import make_app
from .engine import Engine
from .errors import ConfigError, FacedError

log = logging.getLogger("faced.service")
# Server threads beyond the pool's places: /health, /metrics, management reads and quick refusals (401, 503)
# keep answering while every inference place is taken.
SPARE_THREADS = 16


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Gateway(wsgi.Gateway_10):
    """cheroot's WSGI gateway plus `faced.close_connection` in the environ: a response sent before the body
    was read closes the connection instead of draining a body that may be huge (a refused 401, 413 or 503)."""

    def get_environ(self):
        environ = super().get_environ()
        request = self.req
        environ["faced.close_connection"] = lambda: setattr(request, "close_connection", True)
        return environ


class Service:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.config = config = engine.config
        if not is_loopback(config.api.host) and not engine.has_keys():
            # Without API keys every endpoint would be open to the LAN (DESIGN: refuse to bind).
            raise ConfigError(
                f"refusing to serve on {config.api.host}: binding beyond loopback needs an API key; create one "
                "with `faced keys create --name NAME` (or serve on 127.0.0.1)", "NO_API_KEYS")
        self.app = make_app(engine)
        self.state = self.app.config["faced.state"]
        threads = config.api.workers + config.api.queue + SPARE_THREADS
        self.server = wsgi.Server((config.api.host, config.api.port), self.app, numthreads=threads,
                                  server_name="faced")
        self.server.gateway = Gateway
        self.scheme = "http"
        if config.api.tls_cert or config.api.tls_key:
            self._tls(config.api.tls_cert, config.api.tls_key)
        self._stopped = threading.Event()

    def _tls(self, cert: str, key: str) -> None:
        if not cert or not key:
            raise ConfigError("HTTPS needs both api.tls_cert and api.tls_key", "TLS_ERROR")
        for path in (cert, key):
            if not Path(path).expanduser().is_file():
                raise ConfigError(f"TLS file {path} does not exist", "TLS_ERROR")
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        try:
            self.server.ssl_adapter = BuiltinSSLAdapter(str(Path(cert).expanduser()), str(Path(key).expanduser()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the TLS certificate or key: {exc}", "TLS_ERROR") from None
        self.scheme = "https"

    @property
    def bound_port(self) -> int:
        return self.server.bind_addr[1]

    def prepare(self) -> None:
        """Bind the port (the caller learns the port of port 0 from bound_port)."""
        try:
            self.server.prepare()
        except OSError as exc:
            # cheroot wraps the bind error in a message of its own, without errno.
            in_use = exc.errno == errno.EADDRINUSE or os.strerror(errno.EADDRINUSE) in str(exc)
            where = f"{self.config.api.host}:{self.config.api.port}"
            raise FacedError(f"port {self.config.api.port} is in use on {self.config.api.host}: stop the other "
                             "program or choose another port (--port, FACED_API_PORT)" if in_use else
                             f"cannot serve on {where}: {exc}", "ADDRESS_IN_USE" if in_use else "CONFIG_ERROR"
                             ) from None

    def run(self, signals: bool = True) -> None:
        if signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop())
        self.prepare()
        self.engine.prepare(liveness=True, attributes=True)
        log.info("serving on %s://%s:%d", self.scheme, self.config.api.host, self.bound_port)
        print(f"faced: serving on {self.scheme}://{self.config.api.host}:{self.bound_port} (Ctrl-C stops)",
              flush=True)
        try:
            self.server.serve()
        finally:
            self.state.pool.close()

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            threading.Thread(target=self.server.stop, daemon=True).start()
