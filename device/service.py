"""The daemon: serves the HTTP API on a threaded WSGI server (cheroot) until SIGINT/SIGTERM."""
from __future__ import annotations

import errno
import ipaddress
import os
import logging
import signal
import threading

from cheroot import wsgi

from .api.app import make_app
from .engine import Engine
from .errors import ConfigError, FacedError

log = logging.getLogger("faced.service")


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Service:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.config = config = engine.config
        if not is_loopback(config.api.host):
            # Without API keys every endpoint would be open to the LAN (DESIGN: refuse to bind).
            raise ConfigError(
                f"refusing to serve on {config.api.host}: binding beyond loopback requires API keys, "
                "which this version does not have yet; use 127.0.0.1"
            )
        self.server = wsgi.Server((config.api.host, config.api.port), make_app(engine), numthreads=8,
                                  server_name="faced")
        self._stopped = threading.Event()

    @property
    def bound_port(self) -> int:
        return self.server.bind_addr[1]

    def run(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop())
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
        log.info("serving on http://%s:%d", self.config.api.host, self.bound_port)
        print(f"faced: serving on http://{self.config.api.host}:{self.bound_port} (Ctrl-C stops)", flush=True)
        self.server.serve()

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            threading.Thread(target=self.server.stop, daemon=True).start()
