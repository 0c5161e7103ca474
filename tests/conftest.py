"""Redis for the tests: a private server, never the shared one on the default port."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .redis_cluster import RedisCluster, redis_cli_binary
from .redis_server import RedisServer, redis_server_binary

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


NO_CLUSTER = (
    "cluster tests need redis-server and redis-cli on PATH (apt-get install redis-server "
    "redis-tools): they start a three-master Redis Cluster of their own"
)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """The ``redis+cluster://`` URL of a private three-master cluster, for the whole session."""
    with _cluster() as cluster:
        yield cluster.url


@pytest.fixture
def redis_cluster() -> Iterator[RedisCluster]:
    """A private three-master cluster for this test alone, which it may break."""
    with _cluster() as cluster:
        yield cluster


@contextmanager
def _cluster() -> Iterator[RedisCluster]:
    server, cli = redis_server_binary(), redis_cli_binary()
    if server is None or cli is None:
        pytest.fail(NO_CLUSTER)
    cluster = RedisCluster(server, cli)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
