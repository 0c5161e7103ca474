"""Run a private redis-server on a free loopback port, one that a test may stop and restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

from tests.processes import free_port

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or ``None`` if it is not on PATH."""
    return shutil.which("redis-server")


class RedisServer:
    """A ``redis-server`` without persistence on 127.0.0.1; ``start``/``stop`` keep the port."""

    def __init__(
        self, binary: str, port: int | None = None, *, extra_args: Sequence[str] = ()
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            prefix=f"redis-{self.port}-", suffix=".log", delete=False
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers PING (it is empty: no persistence)."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
                *self.extra_args,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not answering after {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (its data is gone); ``start`` brings it back on the same port."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # in case it was paused
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are accepted by the kernel, never answered."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the server and remove its log."""
        self.stop()
        self._log.close()
        os.unlink(self._log.name)

    def log(self) -> str:
        with open(self._log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False
