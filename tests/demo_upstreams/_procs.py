"""Helpers for tests that run the real programs as subprocesses."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

from tests.processes import free_port

__all__ = ["free_port", "get", "is_listening", "wait_healthy"]


def get(url: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """A plain GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_healthy(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(url + "/healthz")[0] == 200:
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)
