"""How outcomes are told to clients: the ``errors`` entries and RFC 9457 problem documents.

Framework-free on purpose: any web framework can encode these Structs.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ._errors import AggregationFailed, InvalidBody, RequestError, UnknownParts
from ._outcome import AggregateResult, FailureReason, ItemsResult, PartOutcome

__all__ = ["PartError", "Problem", "StalePart", "part_errors", "problem_for", "stale_parts"]

PROBLEM_JSON = "application/problem+json"
#: How many item ids one ``errors`` entry lists at most (the count is always complete).
MAX_LISTED_ITEMS = 20
_PROBLEM_BASE = "urn:bff:problem:"


class PartError(msgspec.Struct, frozen=True, omit_defaults=True):
    """One failed part, as reported to the client in ``errors``.

    Upstream addresses and library messages are deliberately left out: they are for the logs.
    """

    source: str
    reason: FailureReason
    #: the upstream's HTTP status, when the reason is ``upstream_status``
    status: int | None = None
    #: for a list's item source (``source`` is ``list.item_source``): the ids of the items it
    #: failed for, the first 20 of them
    items: list[str] | None = None
    #: how many items it failed for, in all
    item_count: int | None = None


class StalePart(msgspec.Struct, frozen=True):
    """A part served from the cache past its freshness, because its upstream is being
    refreshed (stale-while-revalidate) or failed (stale-if-error)."""

    source: str
    #: seconds since the upstream produced it
    age: float


def stale_parts(result: AggregateResult) -> list[StalePart]:
    """The ``stale`` list of an answer: one entry per stale part (per item source of a list,
    with its oldest item), in order."""
    stale: list[StalePart] = []
    for o in result.stale:
        if type(o.value) is ItemsResult:
            stale += [StalePart(source=name, age=round(age, 1)) for name, age in o.value.stale]
        else:
            stale.append(StalePart(source=o.name, age=round(o.age or 0.0, 1)))
    return stale


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    #: the failed parts, for a failed aggregation
    errors: list[PartError] | None = None
    #: the request parameter at fault, for a 400
    parameter: str | None = None
    #: the valid part names, when ``fields`` named unknown ones
    valid: list[str] | None = None
    #: a write's body: the JSON paths of its invalid fields (``$.quantity``)
    fields: list[str] | None = None


def part_errors(outcomes: AggregateResult | Iterable[PartOutcome]) -> list[PartError]:
    """The ``errors`` list for these outcomes: one entry per failed part, in order."""
    if isinstance(outcomes, AggregateResult):
        outcomes = outcomes.values()
    errors: list[PartError] = []
    for o in outcomes:
        if o.reason is not None:
            errors.append(
                PartError(
                    source=o.name,
                    reason=o.reason,
                    status=o.upstream_status if o.reason == "upstream_status" else None,
                )
            )
        elif type(o.value) is ItemsResult:
            errors += [
                PartError(
                    source=f.source,
                    reason=f.reason,
                    status=f.status,
                    items=f.ids[:MAX_LISTED_ITEMS],
                    item_count=len(f.ids),
                )
                for f in o.value.failures
            ]
    return errors


def problem_for(error: AggregationFailed | RequestError, *, instance: str | None = None) -> Problem:
    """The problem document a gateway answers with for one of bff-core's request errors."""
    if isinstance(error, AggregationFailed):
        critical = error.critical
        if error.status == 404:
            title, slug = "Not found", "not-found"
            detail = f"{critical.name} answered 404: the requested item does not exist"
        elif error.status == 504:
            title, slug = "Upstream timeout", "upstream-timeout"
            detail = f"critical part {critical.name} did not answer in time"
        else:
            title, slug = "Bad gateway", "upstream-failed"
            detail = f"critical part {critical.name} failed: {_reason_text(critical)}"
        return Problem(
            type=_PROBLEM_BASE + slug,
            title=title,
            status=error.status,
            detail=detail,
            instance=instance,
            errors=part_errors(error.failures),
        )
    if isinstance(error, InvalidBody):
        return Problem(
            type=_PROBLEM_BASE + "invalid-body",
            title="Invalid body",
            status=422,
            detail=str(error),
            instance=instance,
            parameter=error.parameter,
            fields=list(error.fields),
        )
    if isinstance(error, UnknownParts):
        return Problem(
            type=_PROBLEM_BASE + "unknown-fields",
            title="Unknown fields",
            status=400,
            detail=str(error),
            instance=instance,
            parameter=error.parameter,
            valid=list(error.valid),
        )
    return Problem(
        type=_PROBLEM_BASE + "invalid-parameter",
        title="Invalid parameter",
        status=400,
        detail=str(error),
        instance=instance,
        parameter=error.parameter,
    )


def _reason_text(outcome: PartOutcome) -> str:
    if outcome.reason == "upstream_status":
        return f"upstream answered {outcome.upstream_status}"
    return {
        "timeout": "timed out",
        "unavailable": "upstream unavailable",
        "invalid_response": "invalid response",
        "circuit_open": "circuit open",
        "dependency_failed": "a part it depends on failed",
    }.get(outcome.reason or "", str(outcome.reason))
