"""systemd's notification protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET per message.

READY=1 once the API, broker connection and cameras are started; WATCHDOG=1 every half WatchdogSec while the
camera loops are alive; STATUS=... a line for `systemctl status`; STOPPING=1 on shutdown. Outside systemd
(no NOTIFY_SOCKET) every call does nothing.
"""
from __future__ import annotations

import os
import socket


def notify(message: str, env=None) -> bool:
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False


def watchdog_interval_s(env=None) -> float | None:
    """Half of WatchdogSec= when systemd watches this process, else None."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2, 0.05)
    except ValueError:
        return None
