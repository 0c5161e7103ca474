"""Redis for the tests: a private server, never the shared one on the default port."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .redis_cluster import RedisCluster, redis_cli_binary
from .redis_server import RedisServer, TlsFiles, redis_server_binary

#: The password of the tests' secured Redis servers: characters a URL must escape included.
REDIS_PASSWORD = "s3cret/with:odd@chars"

NO_REDIS = (
    "tests need Redis: install redis-server (apt-get install redis-server), "
    "or set REDIS_URL, or run a Docker engine"
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis the tests may use, for the whole session.

    In order of preference: a private redis-server started here, the Redis named by
    ``REDIS_URL`` (possibly shared: tests must keep to their own namespace, see
    :func:`redis_namespace`), a Redis container. Never an implicit ``localhost:6379``.
    """
    binary = redis_server_binary()
    if binary is not None:
        server = RedisServer(binary)
        server.start()
        try:
            yield server.url
        finally:
            server.close()
        return
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        yield env_url
        return
    try:
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine")
        container.start()
    except Exception as exc:  # no Docker engine answering, image pull refused, ...
        pytest.fail(f"{NO_REDIS} (docker: {type(exc).__name__}: {exc})")
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"
    finally:
        container.stop()


@pytest.fixture
def redis_namespace() -> str:
    """A key prefix of this test's own, so tests never see each other's (or anyone's) keys."""
    return f"bff-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server for this test alone, which it may stop, pause and restart."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(
            "stopping Redis mid-test needs redis-server on PATH (apt-get install redis-server)"
        )
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_tls_files() -> Iterator[TlsFiles]:
    """A certificate authority and a server certificate for 127.0.0.1, made for this session."""
    with tempfile.TemporaryDirectory(prefix="redis-tls-") as directory:
        yield TlsFiles.generate(Path(directory))


@pytest.fixture(scope="session")
def redis_password_url() -> Iterator[str]:
    """The URL, password included, of a private redis-server that requires it."""
    with _secured(password=REDIS_PASSWORD) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_tls_url(redis_tls_files: TlsFiles) -> Iterator[str]:
    """The ``rediss://`` URL (with a password and the CA as ``ssl_ca_certs``) of a private
    redis-server that listens with TLS only, on a certificate of the session's own CA."""
    with _secured(password=REDIS_PASSWORD, tls=redis_tls_files) as server:
        yield server.url


@contextmanager
def _secured(password: str, tls: TlsFiles | None = None) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        pytest.fail(f"{NO_REDIS} (a secured Redis needs redis-server on PATH)")
    server = RedisServer(binary, password=password, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.close()


NO_CLUSTER = (
    "cluster tests need redis-server and redis-cli on PATH (apt-get install redis-server "
    "redis-tools): they start a three-master Redis Cluster of their own"
)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """The ``redis+cluster://`` URL of a private three-master cluster, for the whole session."""
    with _cluster() as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def redis_cluster_password_url() -> Iterator[str]:
    """The ``redis+cluster://:password@...`` URL of a private cluster that requires it."""
    with _cluster(password=REDIS_PASSWORD) as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def redis_cluster_tls_url(redis_tls_files: TlsFiles) -> Iterator[str]:
    """The ``rediss+cluster://`` URL (a password, the CA as ``ssl_ca_certs``) of a private
    cluster whose nodes listen with TLS only, among themselves too."""
    with _cluster(password=REDIS_PASSWORD, tls=redis_tls_files) as cluster:
        yield cluster.url


@pytest.fixture
def redis_cluster() -> Iterator[RedisCluster]:
    """A private three-master cluster for this test alone, which it may break."""
    with _cluster() as cluster:
        yield cluster


@contextmanager
def _cluster(password: str | None = None, tls: TlsFiles | None = None) -> Iterator[RedisCluster]:
    server, cli = redis_server_binary(), redis_cli_binary()
    if server is None or cli is None:
        pytest.fail(NO_CLUSTER)
    cluster = RedisCluster(server, cli, password=password, tls=tls)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
