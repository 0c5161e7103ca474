"""Compressed answers from a real BFF (served from the test process, over real HTTP),
negotiated from Accept-Encoding."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator

import brotli
import httpx
import msgspec
import pytest
import zstandard
from bff_core.litestar._edge import Compression

from tests.processes import Served
from tests.services.conftest import Upstreams, serve_bff

WEB_ROUTE = "/api/aggregated/product?id=p-1001"  # 1,831 bytes as JSON


def raw_get(service: Served, target: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a socket, so that nothing decodes the body on the way."""
    host, port = service.url.removeprefix("http://").split(":")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        parsed[key] = f"{parsed[key]}, {value.strip()}" if key in parsed else value.strip()
    return int(status_line.split()[1]), parsed, body


DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda body: zstandard.ZstdDecompressor().decompressobj().decompress(body),
}


@pytest.fixture
def web(upstreams: Upstreams) -> Iterator[Served]:
    with serve_bff(upstreams.url) as service:
        yield service


@pytest.mark.parametrize(
    ("accept_encoding", "expected"),
    [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),  # a tie: the server's order
        ("gzip, br;q=0.9", "gzip"),  # the client's q-values first
        ("br;q=0.5, gzip;q=0.4", "br"),
        ("*", "zstd"),
        ("*;q=0.3, gzip", "gzip"),
        ("identity", None),
        ("gzip;q=0, br;q=0, zstd;q=0", None),
        ("deflate", None),
    ],
)
def test_the_encoding_follows_accept_encoding(
    web: Served, accept_encoding: str, expected: str | None
) -> None:
    status, headers, body = raw_get(web, WEB_ROUTE, accept_encoding=accept_encoding)
    _, _, plain = raw_get(web, WEB_ROUTE)
    assert status == 200
    assert "accept-encoding" in headers["vary"].lower()
    assert headers.get("content-encoding") == expected
    assert int(headers["content-length"]) == len(body)
    if expected is None:
        assert body == plain
    else:
        assert len(body) < len(plain)
        assert msgspec.json.decode(DECODE[expected](body)) == msgspec.json.decode(plain)


def test_small_bodies_304s_and_msgpack_are_handled(web: Served) -> None:
    # The phone-sized answer of a product with few fields is under the minimum.
    status, headers, _ = raw_get(web, "/healthz", accept_encoding="gzip")
    assert status == 200 and "content-encoding" not in headers
    _, first, _ = raw_get(web, WEB_ROUTE, accept_encoding="gzip")
    status, headers, body = raw_get(
        web, WEB_ROUTE, accept_encoding="gzip", if_none_match=first["etag"]
    )
    assert status == 304 and body == b"" and "content-encoding" not in headers
    status, headers, body = raw_get(
        web, WEB_ROUTE, accept_encoding="br", accept="application/msgpack"
    )
    assert headers["content-encoding"] == "br"
    assert msgspec.msgpack.decode(brotli.decompress(body))["product"]["id"] == "p-1001"


def test_compression_can_be_turned_off(upstreams: Upstreams) -> None:
    with serve_bff(upstreams.url, BFF_COMPRESSION="off") as web:
        _, headers, _ = raw_get(web, WEB_ROUTE, accept_encoding="gzip, br, zstd")
        assert "content-encoding" not in headers


def test_an_http_client_reads_the_compressed_answer_as_the_plain_one(web: Served) -> None:
    with httpx.Client() as client:
        answer = client.get(web.url + WEB_ROUTE, headers={"accept-encoding": "gzip"})
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.json()["product"]["id"] == "p-1001"


def test_negotiation_alone() -> None:
    assert Compression.choose(None) is None
    assert Compression.choose(b"") is None
    assert Compression.choose(b"GZIP") == "gzip"
    assert Compression.choose(b"gzip;q=nonsense, br") == "br"
