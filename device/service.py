"""The daemon: the HTTP API on a threaded WSGI server (cheroot), the cameras, the MQTT publisher with its
outbox, presence, history pruning and systemd notification, until SIGINT/SIGTERM.

Start-up checks everything before serving: the cameras' sources and collections (a camera without
`collection` needs the database's only collection), the broker URL and the device id; a problem stops it
with one clear message. Binding beyond loopback is refused while no API key exists (every endpoint but /health
needs one). With api.tls_cert and api.tls_key the same port speaks HTTPS (cheroot's builtin SSL adapter).
Shutdown (SIGTERM) stops the cameras, the API and the publisher within about 3 s; whatever the broker has not
acknowledged stays in the outbox for the next start.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import signal
import threading
import time
from pathlib import Path

from cheroot import wsgi

from . import sdnotify
from .api.app import make_app
from .camera.loop import Camera
from .camera.priority import Priority
from .engine import Engine
from .errors import ConfigError, FacedError
from .events.bus import EventBus
from .events.homeassistant import POLL_S, Discovery
from .events.mqtt import Publisher, check_prefix, device_id, parse_url
from .events.outbox import Outbox
from .events.presence import Presence
from .events.sink import EventSink
from .vision.runtime import limit_malloc_arenas

log = logging.getLogger("faced.service")
# Server threads beyond the pool's places: /health, /metrics, management reads, event streams and quick
# refusals (401, 503) keep answering while every inference place is taken.
SPARE_THREADS = 16
PRUNE_EVERY_S = 3600.0
STATUS_EVERY_S = 10.0


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
        limit_malloc_arenas()  # before the server's threads and the cameras' exist
        self.engine = engine
        self.config = config = engine.config
        if not is_loopback(config.api.host) and not engine.has_keys():
            # Without API keys every endpoint would be open to the LAN (DESIGN: refuse to bind).
            raise ConfigError(
                f"refusing to serve on {config.api.host}: binding beyond loopback needs an API key; create one "
                "with `faced keys create --name NAME` (or serve on 127.0.0.1)", "NO_API_KEYS")
        self.priority = Priority()  # the API's pool asks priority.api_should_wait() (device/camera/priority.py)
        self.bus = EventBus()
        self.cameras: dict[str, Camera] = {}
        self.outbox: Outbox | None = None
        self.publisher: Publisher | None = None
        self.presence: Presence | None = None
        self.discovery: Discovery | None = None
        self.device_id = device_id(config.events.device_id)
        self.topic_root = f"{check_prefix(config.mqtt.prefix)}/{self.device_id}"
        if config.mqtt.url:
            parse_url(config.mqtt.url)  # a bad URL stops the start, with the reason
        self._prepare_daemon()
        self.app = make_app(engine, service=self)
        self.state = self.app.config["faced.state"]
        threads = config.api.workers + config.api.queue + SPARE_THREADS
        # A listen backlog for every thread: cheroot's default (5) lets a burst of clients wait out a SYN retry.
        self.server = wsgi.Server((config.api.host, config.api.port), self.app, numthreads=threads,
                                  server_name="faced", request_queue_size=threads)
        self.server.gateway = Gateway
        self.server.shutdown_timeout = 1
        self.scheme = "http"
        if config.api.tls_cert or config.api.tls_key:
            self._tls(config.api.tls_cert, config.api.tls_key)
        self._stopped = threading.Event()

    def _prepare_daemon(self) -> None:
        config, engine = self.config, self.engine
        self.outbox = Outbox(engine.store, config.events.outbox_max, config.events.history_days, self.bus)
        self.presence = Presence(self.outbox, config.events.absence_timeout_s)
        sink = EventSink(self.outbox, self.presence, config.events.thumbnail)
        if config.cameras:
            engine.prepare(liveness=any(c.liveness in ("passive", "both") for c in config.cameras.values()))
        for name, settings in config.cameras.items():
            try:
                self.cameras[name] = Camera(name, settings, engine, sink, self.priority)
            except FacedError as exc:
                raise ConfigError(f"camera {name}: {exc.message}") from None
        if config.mqtt.url:
            self.publisher = Publisher(config.mqtt.url, self.outbox, self.topic_root, config.mqtt.keepalive_s,
                                       config.mqtt.reconnect_max_s, config.mqtt.ca_file)
            if config.homeassistant.discovery:
                self.discovery = Discovery(self.publisher, engine.store, check_prefix(config.homeassistant.prefix),
                                           self.device_id, self.cameras)
                sink.listeners.append(self.discovery.on_event)

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

    def run(self, signals: bool = True) -> None:
        if signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop())
        self.start()
        print(f"faced: serving on {self.scheme}://{self.config.api.host}:{self.bound_port} (Ctrl-C stops)",
              flush=True)
        try:
            self.server.serve()
        finally:
            self.state.pool.close()
            self._shutdown()

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

    def start(self) -> None:
        """Bind the API, load the models, connect to the broker, start the cameras and tell systemd (serving is
        run()'s)."""
        self.prepare()
        self.engine.prepare(liveness=True, attributes=True)
        log.info("serving on %s://%s:%d", self.scheme, self.config.api.host, self.bound_port)
        if self.publisher is not None:
            self.publisher.start()
        for camera in self.cameras.values():
            camera.start()
        threading.Thread(target=self._housekeeping, name="faced-housekeeping", daemon=True).start()
        sdnotify.notify("READY=1\nSTATUS=" + self.status_line())

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            threading.Thread(target=self._stop_serving, daemon=True).start()

    def _stop_serving(self) -> None:
        sdnotify.notify("STOPPING=1")
        self.bus.publish(None)  # ends the event streams, which hold server threads
        stoppers = [threading.Thread(target=camera.stop, daemon=True) for camera in self.cameras.values()]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(2.5)
        self.server.stop()

    def _shutdown(self) -> None:
        if self.publisher is not None:
            self.publisher.stop(1.0)
        log.info("stopped")

    # --------------------------------------------------------------------------------- housekeeping
    def _housekeeping(self) -> None:
        interval = sdnotify.watchdog_interval_s()
        next_ping = next_status = time.monotonic()
        next_prune = time.monotonic() + 60.0
        next_poll = time.monotonic() + POLL_S
        while not self._stopped.wait(min(1.0, interval or 1.0)):
            now = time.monotonic()
            try:
                if self.presence is not None:
                    self.presence.tick()
                if self.discovery is not None and now >= next_poll:
                    next_poll = now + POLL_S
                    self.discovery.poll()
                if self.outbox is not None and now >= next_prune:
                    next_prune = now + PRUNE_EVERY_S
                    self.outbox.prune(time.time())
                    self.engine.visitors.expire()
            except FacedError as exc:
                log.warning("housekeeping: %s", exc.message)
            except Exception:  # a broken step must not end the watchdog's pings
                log.exception("housekeeping failed")
            if interval and now >= next_ping and self.healthy():
                sdnotify.notify("WATCHDOG=1")
                next_ping = now + interval
            if now >= next_status:
                sdnotify.notify("STATUS=" + self.status_line())
                next_status = now + STATUS_EVERY_S

    def healthy(self) -> bool:
        """No camera loop is stuck (a stuck one stops the watchdog pings, and systemd restarts faced)."""
        return all(camera.alive(30.0) for camera in self.cameras.values())

    def status_line(self) -> str:
        parts = [f"API on {self.config.api.host}:{self.bound_port}"]
        if self.cameras:
            parts.append(", ".join(f"{c.name} {c.state}" for c in self.cameras.values()))
        if self.publisher is not None:
            parts.append("broker " + ("connected" if self.publisher.connected else "disconnected"))
        if self.outbox is not None:
            parts.append(f"outbox {self.outbox.depth()}")
        return "; ".join(parts)

    def health(self) -> dict:
        """What GET /health adds: each camera's state, the broker connection and the outbox."""
        keys = ("state", "fps", "dropped", "last_frame_age_s")
        result: dict = {"cameras": {name: {k: status[k] for k in keys}
                                    for name, status in ((n, c.status()) for n, c in self.cameras.items())}}
        result["broker"] = self.publisher.status() if self.publisher else {"configured": False}
        if self.outbox is not None:
            result["outbox"] = {"depth": self.outbox.depth(), "dropped": self.outbox.dropped()}
        return result
