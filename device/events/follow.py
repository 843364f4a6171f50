"""`faced events`: subscribe to a daemon's events topic and hand each event to a callback as it arrives."""
from __future__ import annotations

import json
import threading

from ..errors import ConfigError, FacedError
from .mqtt import check_prefix, device_id, parse_url


def follow(config, show, device: str | None = None, count: int | None = None) -> int:
    import paho.mqtt.client as mqtt

    if not config.mqtt.url:
        raise ConfigError("no broker configured: set FACED_MQTT_URL (e.g. mqtt://localhost:1883) or mqtt.url")
    settings = parse_url(config.mqtt.url)
    topic = f"{check_prefix(config.mqtt.prefix)}/{device or device_id(config.events.device_id)}/events"
    done = threading.Event()
    seen = set()
    state = {"shown": 0, "error": None}

    def on_connect(client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            state["error"] = f"the broker refused the connection: {reason_code}"
            done.set()
        else:
            client.subscribe(topic, qos=1)

    def on_message(client, userdata, message):
        try:
            event = json.loads(message.payload)
        except ValueError:
            return
        if event.get("event_id") in seen:  # QoS 1 may deliver twice
            return
        seen.add(event.get("event_id"))
        show(event)
        state["shown"] += 1
        if count is not None and state["shown"] >= count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if settings["username"] is not None:
        client.username_pw_set(settings["username"], settings["password"])
    if settings["tls"]:
        client.tls_set(ca_certs=config.mqtt.ca_file or None)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(settings["host"], settings["port"], config.mqtt.keepalive_s)
    except OSError as exc:
        raise FacedError(f"cannot reach the broker at {settings['host']}:{settings['port']}: "
                         f"{exc.strerror or exc}", "CONFIG_ERROR") from None
    client.loop_start()
    try:
        while not done.wait(0.5):
            pass
    finally:
        client.disconnect()
        client.loop_stop()
    if state["error"]:
        raise FacedError(state["error"], "CONFIG_ERROR")
    return 0
