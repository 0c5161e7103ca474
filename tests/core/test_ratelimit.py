"""Who a request is counted for, and the limits' notation."""

from __future__ import annotations

import pytest
from bff_core._guards._identity import Identity
from bff_core._guards._ratelimit import (
    RateLimits,
    client_address,
    client_key,
    parse_limits,
    parse_networks,
)

PROXIES = parse_networks("10.0.0.0/8, 127.0.0.1, fd00::/8")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # An untrusted peer is the client, whatever it writes.
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # Behind a trusted proxy: the address it appended.
        ("10.1.1.1", ["198.51.100.1"], "198.51.100.1"),
        # Through two trusted proxies, the right-most untrusted address.
        ("10.1.1.1", ["6.6.6.6, 198.51.100.1, 10.2.2.2"], "198.51.100.1"),
        # Several headers are one list, in order.
        ("10.1.1.1", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        # Garbage left of a trusted hop: the last address a proxy vouches for.
        ("10.1.1.1", ["not-an-ip, 10.2.2.2"], "10.2.2.2"),
        # All trusted: the left-most one.
        ("127.0.0.1", ["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
        # No header at all: the proxy itself.
        ("127.0.0.1", [], "127.0.0.1"),
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_the_client_address_cannot_be_spoofed_past_the_trusted_proxies(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, [h.encode() for h in forwarded], PROXIES) == client


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", [b"198.51.100.1"], ()) == "127.0.0.1"


def test_subjects_are_counted_hashed_and_apart_from_addresses() -> None:
    user = Identity(subject="user-1", token="t", expires_at=0, claims={})
    assert client_key(user, "127.0.0.1") != client_key(None, "127.0.0.1")
    assert "user-1" not in client_key(user, "127.0.0.1")
    assert client_key(None, "127.0.0.1") == "addr:127.0.0.1"


def test_the_policy_header_names_every_limit_that_applies() -> None:
    limits = RateLimits(
        parse_limits("50/second;1000/minute"), per_aggregate={"page": parse_limits("5/2 seconds")}
    )
    assert limits.policy_header(None) == ('"50-per-second";q=50;w=1, "1000-per-minute";q=1000;w=60')
    assert limits.policy_header("page").endswith('"page-5-per-2-second";q=5;w=2')


async def test_in_memory_the_limit_is_exact() -> None:
    limits = RateLimits(parse_limits("3/hour"))
    await limits.start()
    try:
        verdicts = [await limits.check("addr:a", None) for _ in range(5)]
        assert verdicts[:3] == [None] * 3
        refused = verdicts[3]
        assert refused is not None and refused.status == 429
        assert 1 <= refused.retry_after <= 3600
        assert await limits.check("addr:b", None) is None
    finally:
        await limits.aclose()


def test_the_local_sliding_window_weighs_the_previous_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from bff_core._guards import _ratelimit

    clock = [6000.0]  # the start of a minute window
    monkeypatch.setattr(time, "time", lambda: clock[0])
    windows = _ratelimit._LocalWindows()
    [item] = parse_limits("4/minute")
    assert [windows.hit(item, "k") for _ in range(5)] == [True] * 4 + [False]
    # Refused until the next window, where these 4 weigh less and less.
    assert windows.retry_after(item, "k") == 60
    clock[0] += 60 + 15  # a quarter into the next window: 4 * 0.75 = 3 still weigh
    assert windows.hit(item, "k") is True  # floor(3.0) + 1 = 4
    assert windows.hit(item, "k") is False
    # 4 * weight + 1 falls below 4 once the weight is under 3/4: that is now (0.75, just).
    assert windows.retry_after(item, "k") == pytest.approx(0.0)
    clock[0] += 30  # three quarters in: 4 * 0.25 + 1 = 2
    assert [windows.hit(item, "k") for _ in range(3)] == [True, True, False]
    clock[0] += 120  # two windows later nothing weighs
    assert [windows.hit(item, "k") for _ in range(5)] == [True] * 4 + [False]
    # Other keys count apart, and windows long over are forgotten.
    assert windows.hit(item, "other")
    clock[0] += 600
    windows._sweep(clock[0])
    assert windows._counts == {}


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # A hop written with its port is the address, and the walk goes on past it.
        ("10.1.1.1", ["198.51.100.1:4711, 10.2.2.2:80"], "198.51.100.1"),
        ("10.1.1.1", ["6.6.6.6, [2001:db8::7]:4711"], "2001:db8::7"),
        ("10.1.1.1", ["[2001:db8::7]"], "2001:db8::7"),
        # IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 client) is the IPv4 address,
        # as a peer, a trusted proxy and a hop.
        ("::ffff:203.0.113.9", [], "203.0.113.9"),
        ("::ffff:10.1.1.1", ["::ffff:198.51.100.1"], "198.51.100.1"),
        # A port that is not one stops the walk, like any garbage.
        ("10.1.1.1", ["198.51.100.1:http, 10.2.2.2"], "10.2.2.2"),
        ("10.1.1.1", ["[2001:db8::7]x, 10.2.2.2"], "10.2.2.2"),
    ],
)
def test_hops_with_ports_and_mapped_addresses_are_read_as_their_address(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, [h.encode() for h in forwarded], PROXIES) == client


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (['for=198.51.100.1;proto=https, for="[2001:db8::7]:4711"'], "2001:db8::7"),
        (["for=198.51.100.1:4711;by=10.2.2.2", "For=10.2.2.2"], "198.51.100.1"),
        # An obfuscated or unknown node vouches for nothing behind it.
        (["for=198.51.100.1, for=_hidden, for=10.2.2.2"], "10.2.2.2"),
        (["proto=https, for=10.2.2.2"], "10.2.2.2"),
    ],
)
def test_the_forwarded_header_is_read_when_x_forwarded_for_is_absent(
    forwarded: list[str], client: str
) -> None:
    headers = [h.encode() for h in forwarded]
    assert client_address("10.1.1.1", [], PROXIES, headers) == client
    # X-Forwarded-For, when a proxy appended it, is the one read.
    assert client_address("10.1.1.1", [b"203.0.113.1"], PROXIES, headers) == "203.0.113.1"


def test_ipv6_clients_of_one_network_share_a_key() -> None:
    one = client_key(None, client_address("2001:db8:1:2::1", [], ()))
    assert one == "addr:2001:db8:1:2::/64"
    assert client_key(None, "2001:db8:1:2:ffff:abcd:1:2") == one
    assert client_key(None, "2001:db8:1:3::1") != one
    # The prefix is the deployment's.
    assert client_key(None, "2001:db8:1:2::1", ipv6_prefix=128) == "addr:2001:db8:1:2::1/128"
    assert client_key(None, "2001:db8:1:3::1", ipv6_prefix=48) == "addr:2001:db8:1::/48"
    # Behind a trusted proxy, as a peer and mapped IPv4: the same rules.
    behind = client_address("fd00::1", [b"[2001:db8:1:2::9]:55000"], PROXIES)
    assert client_key(None, behind) == one
    assert client_key(None, client_address("::ffff:198.51.100.1", [], ())) == ("addr:198.51.100.1")


async def test_ipv6_clients_of_one_network_share_a_budget() -> None:
    limits = RateLimits(parse_limits("2/hour"))
    await limits.start()
    try:
        verdicts = [
            await limits.check(limits.client_of(None, f"2001:db8::{n:x}", [], ()), None)
            for n in range(1, 4)
        ]
        assert verdicts[:2] == [None, None]
        assert verdicts[2] is not None and verdicts[2].status == 429
        other = limits.client_of(None, "2001:db8:0:1::1", [], ())
        assert await limits.check(other, None) is None
    finally:
        await limits.aclose()


def test_forwarded_headers_from_an_untrusted_peer_are_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = RateLimits(parse_limits("2/hour"))
    headers = [(b"x-forwarded-for", b"198.51.100.1")]
    with caplog.at_level("WARNING", logger="bff_core.ratelimit"):
        # From a trusted proxy: nothing to say; without the header: neither.
        assert limits.client_of(None, "10.1.1.1", headers, PROXIES) == "addr:198.51.100.1"
        assert limits.client_of(None, "203.0.113.9", [], PROXIES) == "addr:203.0.113.9"
        assert not caplog.records
        for _ in range(3):
            assert limits.client_of(None, "203.0.113.9", headers, ()) == "addr:203.0.113.9"
        limits.client_of(None, "203.0.113.10", [(b"forwarded", b"for=1.2.3.4")], PROXIES)
    [warning] = caplog.records
    assert "203.0.113.9" in warning.getMessage()
    assert "BFF_TRUSTED_PROXIES" in warning.getMessage()


async def test_in_memory_windows_stay_bounded_and_busy_clients_stay_counted() -> None:
    limits = RateLimits(parse_limits("3/hour"))
    await limits.start()
    try:
        assert [await limits.check("addr:busy", None) for _ in range(4)][-1] is not None
        for n in range(100_000):
            await limits.check(f"addr:10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", None)
            if n % 1000 == 0:  # the busy client keeps coming, and stays refused
                refused = await limits.check("addr:busy", None)
                assert refused is not None and refused.status == 429
        assert limits._local is not None
        assert len(limits._local._counts) <= limits.max_local_windows < 100_000
    finally:
        await limits.aclose()


@pytest.mark.parametrize(
    "kind", ["redis_password", "redis_tls", "redis_cluster_password", "redis_cluster_tls"]
)
async def test_limits_are_counted_in_a_secured_redis(
    request: pytest.FixtureRequest, kind: str, redis_namespace: str
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    limits = RateLimits(parse_limits("2/hour"), redis_url=url, namespace=redis_namespace, timeout=2)
    await limits.start()
    try:
        verdicts = [await limits.check("addr:198.51.100.1", None) for _ in range(3)]
        assert verdicts[:2] == [None, None]
        assert verdicts[2] is not None and verdicts[2].status == 429
    finally:
        await limits.aclose()


async def test_a_refused_password_fails_the_limits_as_configured(redis_password_url: str) -> None:
    wrong = "redis://:wrong@" + redis_password_url.rpartition("@")[2]
    limits = RateLimits(parse_limits("2/hour"), redis_url=wrong, fail_closed=True, timeout=2)
    await limits.start()
    try:
        refused = await limits.check("addr:198.51.100.1", None)
        assert refused is not None and refused.status == 503
    finally:
        await limits.aclose()
