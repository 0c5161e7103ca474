"""Run a private redis-server on a free loopback port, one that a test may stop and restart;
with a password (``requirepass``) and with TLS only (certificates made here), as a deployment
that treats Redis as a trust boundary runs it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import free_port

__all__ = ["RedisServer", "TlsFiles", "redis_server_binary"]


def redis_server_binary() -> str | None:
    """The path of ``redis-server``, or ``None`` if it is not on PATH."""
    return shutil.which("redis-server")


@dataclass(frozen=True)
class TlsFiles:
    """A certificate authority of its own and a server certificate it signed for 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def generate(cls, directory: Path) -> TlsFiles:
        now = datetime.datetime.now(datetime.UTC)

        def certificate(
            subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None
        ) -> x509.CertificateBuilder:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            return (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(issuer or name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
            )

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            certificate("bff tests' Redis CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            certificate("127.0.0.1", server_key, ca.subject)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        files = cls(directory / "ca.crt", directory / "redis.crt", directory / "redis.key")
        files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return files

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


class RedisServer:
    """A ``redis-server`` without persistence on 127.0.0.1; ``start``/``stop`` keep the port.

    With ``password``, clients must authenticate (``requirepass``, and ``masterauth`` for a
    cluster's nodes); with ``tls``, it listens with TLS only (no plain port). ``url`` says
    both: ``redis://:password@...``, ``rediss://...?ssl_ca_certs=<the CA>``.
    """

    def __init__(
        self,
        binary: str,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.password = password
        self.tls = tls
        auth = f":{quote(password, safe='')}@" if password else ""
        if tls is None:
            self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        else:
            self.url = (
                f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={quote(str(tls.ca), safe='')}"
            )
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
        secured: list[str] = []
        if self.password is not None:
            secured += ["--requirepass", self.password, "--masterauth", self.password]
        if self.tls is not None:
            secured += [
                *("--port", "0", "--tls-port", str(self.port)),
                *("--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)),
                *("--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"),
            ]
        self._process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
                *secured,
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
        return self.command(b"PING").startswith(b"+PONG")

    def command(self, command: bytes) -> bytes:
        """The first line of the server's reply to one inline ``command`` (authenticated
        first, through TLS if it listens with it); empty when it cannot be reached."""
        try:
            with self.connection() as (sock, reply):
                sock.sendall(command + b"\r\n")
                return reply.readline()
        except (OSError, ssl.SSLError, ConnectionError):
            return b""

    @contextmanager
    def connection(self) -> Iterator[tuple[socket.socket, BinaryIO]]:
        """A connection to the server (through TLS if it listens with it), authenticated, and
        a file to read its replies from. :class:`OSError` when it cannot be made."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as plain:
            sock = (
                self.tls.client_context().wrap_socket(plain, server_hostname="127.0.0.1")
                if self.tls is not None
                else plain
            )
            reply = sock.makefile("rb")
            if self.password is not None:
                sock.sendall(f"AUTH {self.password}\r\n".encode())
                if not reply.readline().startswith(b"+OK"):
                    raise ConnectionError("redis-server refused the password")
            yield sock, reply
