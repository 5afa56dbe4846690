"""The one reader of boolean specs (model/specs.py) and everything that reads them through it: the
scheduler's `<is>` operator, the driver contract (`VolumeRef.replicated`) and the group rules."""
from __future__ import annotations

import pytest

from cinderblock.model.errors import InvalidInput
from cinderblock.model.group_states import wants_consistent_snapshot
from cinderblock.model.specs import check_boolean_specs, malformed_specs, parse_bool_spec, spec_is_true
from cinderblock.placement.extra_specs import capability_requirements, matches, satisfies
from cinderblock.volume.driver import VolumeRef

SPELLINGS: dict[str, bool | None] = {
    "<is> True": True, "<is> true": True, "<is>  TRUE": True, "<is> yes": True, "<IS> True": True,
    "  <is>\tTrue  ": True, "<is> 1": True, "<is> on": True, "<is> Y": True, "<is> t": True,
    "<is> False": False, "<is> false": False, "<is> no": False, "<Is> OFF": False, "<is> 0": False,
    "<is>True": None, "True": None, "true": None, "yes": None, "<is>": None, "": None, "<is> maybe": None,
    "<is> True False": None, "<is> <is> True": None, "<in> True": None, "is True": None, "<is>true ": None,
}


@pytest.mark.parametrize(("value", "expected"), SPELLINGS.items())
def test_grammar(value: str, expected: bool | None) -> None:
    assert parse_bool_spec(value) is expected


@pytest.mark.parametrize(("value", "expected"), SPELLINGS.items())
def test_the_scheduler_agrees_with_the_parser(value: str, expected: bool | None) -> None:
    """`<is>` in the scheduler's grammar is the parser's; a malformed boolean spec is no requirement."""
    specs = {"replication_enabled": value}
    if expected is None:
        assert capability_requirements(specs) == {}
        assert satisfies({"replication_enabled": True}, specs) is None
        assert satisfies({"replication_enabled": False}, specs) is None
    else:
        assert (matches(True, value), matches(False, value)) == (expected, not expected)
        assert (satisfies({"replication_enabled": True}, specs) is None) is expected
        assert (satisfies({}, specs) is None) is not expected  # not reported: lacks it
    if value.split()[:1] and value.split()[0].lower() == "<is>" and expected is None:
        assert not matches(True, value) and not matches(False, value)  # for keys that may hold anything


@pytest.mark.parametrize(("value", "expected"), SPELLINGS.items())
def test_drivers_group_rules_and_api_read_the_same(value: str, expected: bool | None) -> None:
    truth = expected is True
    assert spec_is_true({"replication_enabled": value}, "replication_enabled") is truth
    assert VolumeRef(id="v", size_gb=1, extra_specs={"replication_enabled": value}).replicated is truth
    assert wants_consistent_snapshot({"consistent_group_snapshot_enabled": value}) is truth


@pytest.mark.parametrize(("value", "expected"), SPELLINGS.items())
def test_a_type_write_is_refused_exactly_when_the_parser_cannot_read(value: str, expected: bool | None) -> None:
    for key in ("replication_enabled", "capabilities:multiattach", "consistent_group_snapshot_enabled"):
        if expected is None:
            with pytest.raises(InvalidInput, match=r"use '<is> True' or '<is> False'"):
                check_boolean_specs({"volume_backend_name": "x", key: value})
        else:
            check_boolean_specs({key: value})


def test_only_boolean_keys_are_checked() -> None:
    specs = {"tier": "True", "volume_backend_name": "<is>True", "vendor:replication_enabled": "yes",
             "replication:mode": "snapshot", "multiattach": "<is> True", "QoS_support": "True"}
    assert malformed_specs(specs) == {"QoS_support": "True"}
