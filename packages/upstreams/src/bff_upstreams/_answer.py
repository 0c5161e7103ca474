"""What every aggregate answer of both BFFs ends with: its failed parts and its stale ones.

The envelope is the contract's (``errors``, ``stale``: left out when empty), and so the same
for every client; a view subclasses :class:`Answer` and declares only its own parts.
"""

from __future__ import annotations

from typing import Any, Self

import msgspec
from bff_core import AggregateResult, PartError, StalePart, part_errors, stale_parts
from msgspec import UNSET, UnsetType

__all__ = ["Answer"]


# kw_only: msgspec places keyword-only fields after a subclass's own, so these two close
# every answer (in the JSON as in the OpenAPI schema), as they did when each view had them.
class Answer(msgspec.Struct, kw_only=True):
    """The base of a view: its ``errors`` and ``stale`` lists, absent when empty."""

    #: the parts that failed, and why
    errors: list[PartError] | UnsetType = UNSET
    #: parts served from the cache past their freshness, and how old they are
    stale: list[StalePart] | UnsetType = UNSET

    @classmethod
    def reporting(cls, result: AggregateResult, **parts: Any) -> Self:
        """The view with these parts, and the result's failed and stale parts reported."""
        return cls(**parts, errors=part_errors(result) or UNSET, stale=stale_parts(result) or UNSET)
