"""Helpers for tests that run the real programs as subprocesses (tests.processes starts them)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from tests.processes import free_port, wait_for

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
    """Until ``GET url/healthz`` answers 200; an error after ``timeout`` seconds."""

    def healthy() -> bool:
        try:
            return get(url + "/healthz")[0] == 200
        except OSError:
            return False

    if not wait_for(healthy, timeout):
        raise RuntimeError(f"{url} not healthy after {timeout} s")
