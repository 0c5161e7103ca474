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
