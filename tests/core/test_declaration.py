"""A misdeclared aggregate fails when it is built, with a message naming the mistake."""

from __future__ import annotations

import msgspec
import pytest
from bff_core import Aggregate, DeclarationError, Gateway, Param, Source


class Item(msgspec.Struct):
    id: str
    category: str


def src(name: str, path: str, returns: object = Item, **kwargs: object) -> Source:
    return Source(name, service="svc", path=path, returns=returns, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Aggregate("a", params=[Param("id")], sources=[src("x", "/x/{nope}")]),
            "unknown template variable {nope}",
        ),
        (
            lambda: Aggregate("a", params=[Param("id")], sources=[src("x", "/x/{other.id}")]),
            "no source 'other'",
        ),
        (
            lambda: Aggregate(
                "a", params=[Param("id")], sources=[src("x", "/x/{id}"), src("y", "/y/{x.colour}")]
            ),
            "Item has no field 'colour'",
        ),
        (
            lambda: Aggregate(
                "a",
                params=[Param("id")],
                sources=[src("x", "/x/{y.id}"), src("y", "/y/{z.id}"), src("z", "/z/{x.id}")],
            ),
            "dependency cycle x -> y -> z -> x",
        ),
        (
            lambda: Aggregate("a", params=[Param("id")], sources=[src("x", "/x/{x.id}")]),
            "refers to the source itself",
        ),
        (
            lambda: Aggregate(
                "a", params=[Param("id")], sources=[src("x", "/x/{id}"), src("x", "/y")]
            ),
            "duplicate source name 'x'",
        ),
        (
            lambda: Aggregate("a", params=[Param("id"), Param("id")], sources=[src("x", "/x")]),
            "duplicate parameter name 'id'",
        ),
        (
            lambda: Aggregate("a", params=[Param("x")], sources=[src("x", "/x")]),
            "'x' is both a parameter and a source name",
        ),
        (
            lambda: Aggregate(
                "a", params=[Param("id")], sources=[src("x", "/x/{id}"), src("y", "/y/{x}")]
            ),
            "names a source; use a field of it",
        ),
        (lambda: Aggregate("a", params=[], sources=[]), "has no sources"),
        (lambda: src("x", "/x/{id!r}"), "may not have a format or a conversion"),
        (lambda: src("x", "/x/{id:>3}"), "may not have a format or a conversion"),
        (lambda: src("x", "/x/{id"), "bad path template"),
        (lambda: src("x", "/x/{a-b}"), "is not a name or a dotted path"),
        (lambda: src("x", "x/{id}"), "must start with '/'"),
        (lambda: src("x", "/x#frag"), "must not contain a fragment"),
        (lambda: src("x", "/x", timeout=0), "timeout must be positive"),
        (lambda: src("x", "/x", returns=object()), "not a type msgspec can decode"),
        (lambda: src("not-a-name", "/x"), "is not an identifier"),
        (lambda: Param("id", max_length=0), "max_length"),
        (lambda: Param("id", required=False), "needs a default"),
    ],
)
def test_misdeclarations_are_refused_with_a_message_naming_them(
    build: object, message: str
) -> None:
    with pytest.raises(DeclarationError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value)


def test_sources_are_ordered_so_dependencies_come_first() -> None:
    aggregate = Aggregate(
        "a",
        params=[Param("id")],
        sources=[src("z", "/z/{y.id}"), src("y", "/y/{x.id}"), src("x", "/x/{id}")],
    )
    assert aggregate.part_names == ("x", "y", "z")
    assert aggregate.sources[2].depends_on == frozenset({"y"})


def test_a_gateway_refuses_an_aggregate_whose_service_has_no_url() -> None:
    aggregate = Aggregate("a", params=[Param("id")], sources=[src("x", "/x/{id}")])
    with pytest.raises(DeclarationError) as caught:
        Gateway(services={"other": "http://127.0.0.1:1"}, aggregates=[aggregate])
    assert "calls service(s) svc which have no base URL" in str(caught.value)


def test_a_gateway_refuses_two_aggregates_with_one_name() -> None:
    first = Aggregate("a", params=[Param("id")], sources=[src("x", "/x/{id}")])
    second = Aggregate("a", params=[Param("id")], sources=[src("y", "/y/{id}")])
    with pytest.raises(DeclarationError, match="two aggregates are named 'a'"):
        Gateway(services={"svc": "http://127.0.0.1:1"}, aggregates=[first, second])


def test_a_source_given_the_identity_must_cache_per_user() -> None:
    from bff_core import CachePolicy

    with pytest.raises(DeclarationError, match="'pricing' is given the caller's identity"):
        Source(
            "pricing",
            service="pricing",
            path="/prices/{id}",
            returns=dict,
            subject_header="x-user-id",
            cache=CachePolicy(ttl=30),
        )
    with pytest.raises(DeclarationError, match="per_user=True"):
        Source("a", service="s", path="/a", returns=dict, pass_token=True, cache=CachePolicy(5))
    allowed = Source(
        "a", service="s", path="/a", returns=dict, subject_header="X-User-Id",
        cache=CachePolicy(5, per_user=True),
    )  # fmt: skip
    assert allowed.subject_header == "x-user-id" and allowed.passes_identity


@pytest.mark.parametrize("header", ["authorization", "Host", "x-request-id", "bad header", ""])
def test_the_subject_header_cannot_be_one_the_gateway_sets_or_no_header(header: str) -> None:
    with pytest.raises(DeclarationError, match="is not a header name the gateway may set"):
        Source("a", service="s", path="/a", returns=dict, subject_header=header)


def test_an_aggregate_says_whether_it_needs_a_caller_and_uses_one() -> None:
    plain = Source("a", service="s", path="/a", returns=dict)
    personal = Source("b", service="s", path="/b", returns=dict, pass_token=True)
    assert not Aggregate("x", params=[], sources=[plain]).uses_identity
    needs = Aggregate("y", params=[], sources=[plain, personal], requires_identity=True)
    assert needs.uses_identity and needs.requires_identity
