"""What may be cached, and for how long: declared policies against upstream Cache-Control."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from bff_core import CachePolicy, Source
from bff_core._cache._lookups import _key
from bff_core._cache._policy import windows as _windows
from bff_core._transports import UpstreamResponse

POLICY = CachePolicy(ttl=60, stale_while_revalidate=300, stale_if_error=3600)


def response(cache_control: str | None, status: int = 200) -> UpstreamResponse:
    headers = {} if cache_control is None else {"cache-control": cache_control}
    return UpstreamResponse(status=status, headers=headers, body=b"{}")


@pytest.mark.parametrize(
    ("cache_control", "windows"),
    [
        (None, (60, 300, 3600)),
        ("max-age=10", (10, 300, 3600)),
        ("max-age=600", (60, 300, 3600)),  # the upstream never lengthens a declared window
        ("max-age=1, stale-while-revalidate=5, stale-if-error=9", (1, 5, 9)),
        ('MAX-AGE="30", public', (30, 300, 3600)),
        ("max-age=nonsense", (60, 300, 3600)),
        ("max-age=0", None),
        ("no-store", None),
        ("no-cache", None),
        ("private, max-age=60", None),
    ],
)
def test_the_upstream_can_shorten_or_forbid_never_lengthen(
    cache_control: str | None, windows: tuple[float, float, float] | None
) -> None:
    assert _windows(POLICY, response(cache_control)) == windows


@pytest.mark.parametrize("status", [201, 204, 304, 404, 500, 503])
def test_only_200_answers_are_stored(status: int) -> None:
    assert _windows(POLICY, response(None, status)) is None


def test_private_answers_only_with_a_per_user_policy() -> None:
    per_user = CachePolicy(ttl=30, per_user=True)
    assert _windows(per_user, response("private, max-age=10")) == (10, 0, 0)


def test_requests_with_credentials_are_keyed_per_user_or_not_cached() -> None:
    source = Source("me", service="s", path="/me", returns=dict[str, msgspec.Raw])
    url = "http://s/me"
    assert _key(source, POLICY, url, {"accept": "application/json"}) == "part:me:http://s/me"
    assert _key(source, POLICY, url, {"authorization": "Bearer a"}) is None
    per_user = CachePolicy(ttl=30, per_user=True)
    alice = _key(source, per_user, url, {"authorization": "Bearer alice"})
    bob = _key(source, per_user, url, {"cookie": "session=bob"})
    assert alice is not None and bob is not None
    assert alice != bob
    assert "alice" not in alice  # credentials are hashed, never written into keys


def test_a_path_that_names_the_user_is_hashed_in_its_key() -> None:
    source = Source(
        "picks",
        service="s",
        path="/recommendations/{user}",
        returns=dict[str, msgspec.Raw],
        cache=CachePolicy(ttl=30, per_user=True),
    )
    policy = CachePolicy(ttl=30, per_user=True)
    keys = {
        user: _key(source, policy, f"http://s/recommendations/{user}", {})
        for user in ("alice", "bob", "anonymous")
    }
    assert len(set(keys.values())) == 3  # still one entry per user
    for user, key in keys.items():
        assert key is not None and key.startswith("part:picks:url=") and user not in key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": 10, "stale_while_revalidate": -1},
        {"ttl": 1, "stale_if_error": -5},
    ],
)
def test_a_bad_policy_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="CachePolicy"):
        CachePolicy(**kwargs)
