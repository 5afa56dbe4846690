"""Malformed-input sweep in CI: requests generated from the service's own OpenAPI document (schemathesis),
for every operation, as an administrator, a member and a reader of project A (tests/api/sweep.py has the
generation: list filters, microversions, action names with arbitrary arguments, real ids of two projects,
lone surrogates, NUL and control characters, 64 KiB strings, deep nesting, raw non-JSON bodies).

Nothing may answer 5xx, and project A's callers may never receive data of project B. Generation is
derandomized and bounded: the same requests every run, about a minute. bench/hostile_sweep.py runs the
same sweep with 20,000+ requests on SQLite, PostgreSQL and MariaDB.
"""
from __future__ import annotations

import schemathesis
from schemathesis.core.result import Ok

from tests.api.sweep import Tally, fixed_sweep, sweep
from tests.api.test_policy_matrix import build_world
from tests.conftest import Cloud

EXAMPLES = 5  # per operation and caller


def test_generated_requests_never_5xx_nor_leak(cloud: Cloud) -> None:
    tally = Tally()
    with cloud.client:
        world = build_world(cloud, groups=True)
        schema = schemathesis.openapi.from_asgi("/openapi.json", cloud.running.app)
        results = list(schema.get_all_operations())
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == len(results) > 40, [r for r in results if not isinstance(r, Ok)]
        sweep(cloud.client, world, operations, EXAMPLES, tally)
    assert tally.total > 40 * 3 * 3, tally.requests
    assert not tally.failures, f"{tally.failure_count} failures:\n" + "\n".join(tally.failures[:25])


def test_every_hostile_value_in_every_slot_never_5xx(cloud: Cloud) -> None:
    tally = Tally()
    with cloud.client:
        world = build_world(cloud, groups=True)
        schema = schemathesis.openapi.from_asgi("/openapi.json", cloud.running.app)
        operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
        fixed_sweep(cloud.client, world, operations, tally)
    assert tally.total > 1000, tally.requests
    assert not tally.failures, f"{tally.failure_count} failures:\n" + "\n".join(tally.failures[:25])
