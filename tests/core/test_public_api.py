"""The public API only grows on purpose: this list is what users may import."""

from __future__ import annotations

import bff_core
import bff_core.litestar


def test_exported_members() -> None:
    assert bff_core.__all__ == [
        "DEFAULT_MAX_BODY_BYTES",
        "Aggregate",
        "AggregateResult",
        "AggregateStream",
        "AggregationFailed",
        "AiohttpTransport",
        "BFFError",
        "Batch",
        "BreakerPolicy",
        "CachePolicy",
        "CacheResult",
        "CircuitOpen",
        "ConfigurationError",
        "DeclarationError",
        "FailureReason",
        "Gateway",
        "GatewaySettings",
        "HttpxTransport",
        "InvalidBody",
        "InvalidParameter",
        "Item",
        "ItemFailure",
        "Items",
        "ItemsResult",
        "Metrics",
        "Mutation",
        "OutcomeUnknown",
        "Param",
        "PartError",
        "PartOutcome",
        "Problem",
        "PyreqwestTransport",
        "RequestError",
        "RequestNotSent",
        "ResponseTooLarge",
        "RetryBudget",
        "RetryPolicy",
        "Setting",
        "Source",
        "StalePart",
        "Transport",
        "TransportError",
        "UnknownParts",
        "UpstreamResponse",
        "UpstreamStatus",
        "UpstreamUnavailable",
        "WriteFailed",
        "WriteResult",
        "WritingTransport",
        "part_errors",
        "problem_for",
        "stale_parts",
    ]
    for name in bff_core.__all__:
        assert getattr(bff_core, name) is not None, name
    assert bff_core.litestar.__all__ == [
        "PROBLEM_RESPONSES",
        "GatewayPlugin",
        "Health",
        "Readiness",
        "aggregate_response",
        "aggregate_route",
        "create_gateway_app",
        "mutation_route",
        "serve",
    ]


def test_every_error_derives_from_one_base() -> None:
    errors = [
        getattr(bff_core, name)
        for name in bff_core.__all__
        if isinstance(getattr(bff_core, name), type)
        and issubclass(getattr(bff_core, name), Exception)
    ]
    assert len(errors) == 15
    assert all(issubclass(error, bff_core.BFFError) for error in errors)


def test_the_engine_imports_no_web_framework_nor_optional_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bff_core; "
        "loaded = {'litestar', 'httpx', 'pyreqwest'} & {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(loaded))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.strip() == "[]"
