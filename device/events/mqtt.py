"""MQTT publisher (paho-mqtt 2, QoS 1) that drains the outbox in order.

Topics under `<mqtt.prefix>/<device_id>/`: `availability` (online/offline, retained; `offline` is also the last
will, so a killed daemon turns offline), `events`, `person/<person_id>/state` (retained). Home Assistant's
discovery (device/events/homeassistant.py) adds subscriptions (its birth message) and a callback run after each
connection, both in the sender thread.

Delivery: one sender thread hands queued messages to paho in outbox order (at most MAX_INFLIGHT unacknowledged),
remembers message id -> outbox row, and deletes a row only when paho reports the broker's PUBACK for it
(`on_publish` with a success reason code). After a reconnection it starts again from the oldest row still
queued, so an outage (or a restart) resends everything unacknowledged in order; a message may arrive twice
(QoS 1 is at-least-once): subscribers drop repeats by event_id. paho's callbacks run in its network thread
while it holds its own locks, so they only put notes on a queue; all bookkeeping happens in the sender thread.
"""
from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError

log = logging.getLogger("faced.mqtt")
MAX_INFLIGHT = 20


def parse_url(url: str) -> dict:
    """mqtt://[user[:password]@]host[:port] or mqtts://... -> connection settings (checked at start-up)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"mqtt.url {redact(url)!r}: use mqtt://host:1883 or mqtts://host:8883 "
                          "(user:password@ before the host when the broker needs them)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"mqtt.url {redact(url)!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ConfigError(f"mqtt.url {redact(url)!r} has no host")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"mqtt.url {redact(url)!r}: set the topic prefix with mqtt.prefix, not in the URL")
    tls = parts.scheme == "mqtts"
    return {"host": parts.hostname, "port": port or (8883 if tls else 1883), "tls": tls,
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}


def redact(url: str) -> str:
    """The URL without its password (for logs, /health and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def device_id(configured: str) -> str:
    """events.device_id, or the host name; one MQTT topic level (letters, digits, '-', '_')."""
    value = configured or socket.gethostname().split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in value)
    if configured and cleaned != configured:
        raise ConfigError(f"events.device_id {configured!r}: use letters, digits, '-' and '_' (it is a topic level)")
    return cleaned or "faced"


def check_prefix(prefix: str) -> str:
    if not prefix or any(c in prefix for c in "+#") or prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(f"mqtt.prefix {prefix!r}: a topic without '+', '#' or leading/trailing '/'")
    return prefix


class Publisher:
    def __init__(self, url: str, outbox, root: str, keepalive_s: int = 30, reconnect_max_s: int = 10,
                 ca_file: str = ""):
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.settings = parse_url(url)
        self.url = redact(url)
        self.outbox = outbox
        self.root = root
        self.keepalive_s = keepalive_s
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"faced-{root.replace('/', '-')}",
                             clean_session=True)
        if self.settings["username"] is not None:
            client.username_pw_set(self.settings["username"], self.settings["password"])
        if self.settings["tls"]:
            client.tls_set(ca_certs=ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, reconnect_max_s)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.subscriptions: dict = {}  # topic -> callback(payload text), run in the sender thread
        self.on_connected: list = []  # callbacks run in the sender thread after each (re)connection
        self.client = client
        self.connected = False
        self.last_error = ""
        self.published = 0  # messages acknowledged by the broker since start
        self._notes: queue.Queue = queue.Queue()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._sent_upto = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, name="faced-mqtt-sender", daemon=True)
        outbox.listeners.append(self.wake)

    def topic(self, suffix: str) -> str:
        return f"{self.root}/{suffix}"

    # ------------------------------------------------------------------------------------------ life
    def start(self) -> "Publisher":
        self.client.connect_async(self.settings["host"], self.settings["port"], self.keepalive_s)
        self.client.loop_start()  # connects, and reconnects with back-off, in paho's network thread
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Say `offline` (retained) and disconnect; what is not acknowledged stays in the outbox."""
        self._stopping.set()
        self._notes.put(("stop",))
        self._thread.join(timeout)
        if self.connected:
            try:
                info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def wake(self) -> None:
        self._notes.put(("wake",))

    def status(self) -> dict:
        return {"url": self.url, "connected": self.connected, "acknowledged": self.published,
                **({"last_error": self.last_error} if self.last_error and not self.connected else {})}

    # -------------------------------------------------------------------- paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("mqtt: %s", self.last_error)
            return
        client.publish(self.topic("availability"), "online", qos=1, retain=True)
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self._notes.put(("connected",))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._notes.put(("disconnected", str(reason_code)))

    def _on_message(self, client, userdata, message) -> None:
        self._notes.put(("message", message.topic, message.payload.decode("utf-8", "replace")))

    def _on_publish(self, client, userdata, mid, reason_code, properties=None) -> None:
        self._notes.put(("ack", mid, bool(getattr(reason_code, "is_failure", False))))

    # ------------------------------------------------------------------------------- the sender thread
    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                notes = [self._notes.get(timeout=1.0)]
            except queue.Empty:
                notes = []
            while True:
                try:
                    notes.append(self._notes.get_nowait())
                except queue.Empty:
                    break
            try:
                self._handle(notes)
                if self.connected and not self._stopping.is_set():
                    self._send_more()
            except Exception:  # a database hiccup must not end delivery; the next note retries
                log.exception("mqtt: sending failed")

    def _handle(self, notes) -> None:
        acked, callbacks = [], []
        for note in notes:
            if note[0] == "connected":
                if not self.connected:
                    log.info("mqtt: connected to %s", self.url)
                self.connected, self.last_error = True, ""
                self._inflight.clear()
                self._sent_upto = 0  # resend everything still queued, oldest first
                callbacks.extend(self.on_connected)
            elif note[0] == "message":
                handler = self.subscriptions.get(note[1])
                if handler is not None:
                    callbacks.append(lambda handler=handler, payload=note[2]: handler(payload))
            elif note[0] == "disconnected":
                if self.connected:
                    log.warning("mqtt: disconnected from %s (%s); events wait in the outbox", self.url, note[1])
                self.connected = False
                self.last_error = note[1]
            elif note[0] == "ack":
                row = self._inflight.pop(note[1], None)
                if row is not None and not note[2]:
                    acked.append(row)
        if acked:
            self.outbox.acknowledged(acked)
            self.published += len(acked)
        for callback in callbacks:
            if self.connected:
                callback()

    def _send_more(self) -> None:
        room = MAX_INFLIGHT - len(self._inflight)
        if room <= 0:
            return
        for message in self.outbox.pending(self._sent_upto, room):
            info = self.client.publish(self.topic(message.topic), message.payload, qos=1, retain=message.retain)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                return  # not connected after all: the next `connected` note starts again from the oldest
            self._inflight[info.mid] = message.id
            self._sent_upto = message.id
