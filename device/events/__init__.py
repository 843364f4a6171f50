"""Camera events: the durable SQLite outbox and history (outbox.py), the MQTT publisher (mqtt.py), person
presence (presence.py) and the in-process feed for server-sent events (bus.py)."""
