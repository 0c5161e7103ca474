"""A private Redis Cluster of three masters on free loopback ports, which a test may break.

Made the way an operator makes one: three ``redis-server --cluster-enabled yes`` processes,
joined and given their slots by ``redis-cli --cluster create``. No replicas, no persistence:
a master that is stopped takes its slots with it until it is started again, on the same port
and with the same node configuration, when it rejoins with its slots (and no data).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from tests.processes import free_port
from tests.redis_server import RedisServer, TlsFiles

__all__ = ["RedisCluster", "redis_cli_binary"]

#: How long the cluster waits before it calls a silent master failed. Short, so a test that
#: stops one sees the cluster react within a second or two, as a real one does after its own.
NODE_TIMEOUT_MS = 1000


def redis_cli_binary() -> str | None:
    return shutil.which("redis-cli")


class RedisCluster:
    """Three masters; ``url`` is the ``redis+cluster://`` URL naming all of them."""

    def __init__(
        self,
        server_binary: str,
        cli_binary: str,
        masters: int = 3,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._cli = cli_binary
        self.password = password
        self.tls = tls
        self._dir = tempfile.TemporaryDirectory(prefix="redis-cluster-")
        self.nodes: list[RedisServer] = []
        for index in range(masters):
            port = free_port()
            config = Path(self._dir.name) / f"nodes-{index}.conf"
            self.nodes.append(
                RedisServer(
                    server_binary,
                    port=port,
                    extra_args=(
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", str(config)),
                        # The cluster bus on a free port of its own (port + 10000 may be taken).
                        *("--cluster-port", str(free_port())),
                        *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                        *("--dir", self._dir.name),
                        # With TLS, the nodes talk to each other through it too.
                        *(("--tls-cluster", "yes", "--tls-replication", "yes") if tls else ()),
                    ),
                    password=password,
                    tls=tls,
                )
            )
        auth = f":{quote(password, safe='')}@" if password else ""
        nodes = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        if tls is None:
            self.url = f"redis+cluster://{auth}{nodes}"
        else:
            ca = quote(str(tls.ca), safe="")
            self.url = f"rediss+cluster://{auth}{nodes}?ssl_ca_certs={ca}"

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        if self.tls is not None:
            auth += ["--tls", "--cacert", str(self.tls.ca)]
        created = subprocess.run(
            [self._cli, *auth, "--cluster", "create", *addresses, "--cluster-replicas", "0"],
            input="yes\n",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}"
            )
        # Every node must also know every other one: right after the create, a node can say
        # ok while its gossip has not met the last node yet, and a client asking it then
        # sees fewer masters than there are.
        self.wait_until_ok(timeout, known=len(self.nodes))

    def wait_until_ok(self, timeout: float = 30.0, known: int | None = None) -> None:
        """Until every running master says ``cluster_state:ok`` (and knows ``known`` nodes)."""
        deadline = time.monotonic() + timeout
        while not all(_cluster_ok(node, known) for node in self.nodes if node.running):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
            time.sleep(0.05)

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self._dir.cleanup()


def _cluster_ok(node: RedisServer, known: int | None = None) -> bool:
    try:
        with node.connection() as (sock, reply):
            sock.sendall(b"CLUSTER INFO\r\n")
            header = reply.readline()  # a bulk string: $<length>
            if not header.startswith(b"$"):
                return False
            info = reply.read(int(header[1:]))
            if known is not None and f"cluster_known_nodes:{known}\r".encode() not in info:
                return False
            return b"cluster_state:ok" in info
    except (OSError, ValueError):
        return False
