"""Property-based requests generated from the OpenAPI spec (schemathesis): no endpoint answers with a 5xx.

Bounded: a few examples per operation (derandomized), as an admin with every role so that requests reach the
handlers, plus the same without credentials. The live feed (an endless stream) is left out; it has its own tests.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.unit.api.conftest import Api

EXAMPLES = 6


def test_no_operation_answers_5xx(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app).exclude(path="/api/alerts/stream")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 25
    calls = 0
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            case.call_and_validate(headers=api.h("ada"), checks=[not_a_server_error])

        check()
    assert calls >= 2 * len(operations)
