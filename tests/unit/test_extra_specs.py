"""The extra-spec grammar of the capabilities filter (cinder/scheduler/filters/extra_specs_ops.py)."""
from __future__ import annotations

from typing import Any

import pytest

from cinderblock.placement.extra_specs import capability_requirements, matches, satisfies


@pytest.mark.parametrize("capability,requirement,expected", [
    # `=` is "at least" for numbers, not equality.
    (10, "= 10", True), ("11", "= 10", True), (9.5, "= 10", False), ("abc", "= 10", False), (None, "= 1", False),
    (10, "== 10", True), ("10.0", "== 10", True), (11, "== 10", False),
    (11, "!= 10", True), (10, "!= 10", False),
    (10, ">= 10", True), (9, ">= 10", False),
    (10, "<= 10", True), (11, "<= 10", False),
    # `<in>` is a substring test.
    ("thin thick", "<in> thin", True), ("xyzabc", "<in> abc", True), ("thick", "<in> thin", False),
    # `<is>` compares booleans, whatever their spelling.
    (True, "<is> True", True), ("True", "<is> true", True), ("true", "<is> True", True), (False, "<is> True", False),
    (False, "<is> False", True), ("False", "<is> false", True), (True, "<is> False", False), (None, "<is> True", False),
    # `<or>`: one of.
    ("gold", "<or> silver <or> gold", True), ("silver", "<or> silver <or> gold", True),
    ("bronze", "<or> silver <or> gold", False), ("gold", "<or> gold", True),
    # `<all-in>`: every word in the capability list (or in its words).
    (["a", "b", "c"], "<all-in> a b", True), (["a", "c"], "<all-in> a b", False), ("a b c", "<all-in> a c", True),
    ("a c", "<all-in> a b", False),
    # String comparisons.
    ("abc", "s== abc", True), ("abd", "s== abc", False), ("abd", "s!= abc", True), ("abc", "s!= abc", False),
    ("abc", "s< abd", True), ("abd", "s< abc", False), ("abc", "s<= abc", True), ("abd", "s<= abc", False),
    ("abd", "s> abc", True), ("abc", "s> abc", False), ("abc", "s>= abc", True), ("abc", "s>= abd", False),
    ("10", "s== 10", True), ("9", "s> 10", True),  # strings compare as strings
    # Anything else: plain equality.
    ("iSCSI", "iSCSI", True), ("iSCSI", "FC", False), ("iSCSI", "iscsi", False), (1, "1", True), ("", "", True),
    (True, "True", True), (False, "true", False),
    # A capability list matches when any of its items does.
    (["iSCSI", "iser"], "iser", True), (["iSCSI"], "FC", False), ([1, 20], "= 10", True), ([1, 2], "= 10", False),
    (["thin", "thick"], "<in> hin", True), (["gold"], "<or> silver <or> gold", True),
    # An operator without an operand matches nothing.
    (False, "<is>", False), ("abc", "<in>", False), (5, "=", False), ("", "s==", False), ("a", "<or>", False),
    (["a"], "<all-in>", False),
])
def test_matches(capability: Any, requirement: str, expected: bool) -> None:
    assert matches(capability, requirement) is expected


@pytest.mark.parametrize("specs,expected", [
    ({}, {}),
    ({"capabilities:thin_provisioning_support": "<is> True"}, {"thin_provisioning_support": "<is> True"}),
    ({"storage_protocol": "iSCSI"}, {"storage_protocol": "iSCSI"}),
    ({"RESKEY:availability_zones": "nova", "qos:iops": "10", "vendor:x": "y", "provisioning:type": "thin"}, {}),
])
def test_capability_requirements(specs: dict[str, str], expected: dict[str, str]) -> None:
    assert capability_requirements(specs) == expected


CAPS = {"storage_protocol": ["iSCSI", "iser"], "thin_provisioning_support": True, "total_capacity_gb": 100,
        "vendor_name": "cinderblock", "QoS_support": False}


@pytest.mark.parametrize("specs,failing", [
    ({}, None),
    ({"storage_protocol": "iSCSI"}, None),
    ({"capabilities:storage_protocol": "<in> iSC"}, None),
    ({"storage_protocol": "FC"}, "storage_protocol"),
    ({"thin_provisioning_support": "<is> True", "total_capacity_gb": "= 50"}, None),
    ({"thin_provisioning_support": "<is> True", "total_capacity_gb": "= 500"}, "total_capacity_gb"),
    ({"unknown_capability": "x"}, "unknown_capability"),
    ({"vendor:anything": "x", "RESKEY:availability_zones": "mars"}, None),  # not capabilities
    ({"multiattach": "<is> True"}, "multiattach"),  # not reported: lacking
    ({"multiattach": "<is> False"}, None),
    ({"replication_enabled": "<is> True"}, "replication_enabled"),
    ({"QoS_support": "<is> False"}, None),
])
def test_satisfies(specs: dict[str, str], failing: str | None) -> None:
    assert satisfies(CAPS, specs) == failing


def test_reported_multiattach_is_matched() -> None:
    assert satisfies({"multiattach": True}, {"multiattach": "<is> True"}) is None
    assert satisfies({"multiattach": False}, {"multiattach": "<is> True"}) == "multiattach"


# --- edge cases the reference (§5.2) calls out ---------------------------------------------------------
@pytest.mark.parametrize("capability,requirement,expected", [
    # `=` is "at least", on numbers given as strings too; a non-number on either side never matches.
    ("100", "= 99.5", True), (99, "= 99.5", False), (5, "= abc", False), (True, "= 1", True),
    # `<in>` is a substring test: "sync" is inside "async" (the gotcha), and a list checks its items.
    ("async", "<in> sync", True), (["async", "sync"], "<in> sync", True), (["a"], "<in> b", False),
    # `<is>` reads both sides as booleans, whatever their spelling.
    (True, "<is> true", True), ("yes", "<is> True", True), ("on", "<is> TRUE", True), (1, "<is> True", True),
    ("no", "<is> False", True), (0, "<is> True", False), ("maybe", "<is> False", True),
    # A capability of None fails every requirement, plain ones included.
    (None, "<is> False", False), (None, "None", False), (None, "<or> None", False), (None, "<in> o", False),
    (None, "s!= x", False),
    # `<or>` alternatives are compared whole (they may hold spaces); leading/trailing spaces are ignored.
    ("thin provisioned", "<or> thin provisioned <or> thick", True), ("thin", "<or> thin provisioned", False),
    ("  gold  ", "<or> gold", False),
    # Capability lists: any item, with every operator except <all-in> (which takes the whole list).
    ([1, "20", 3.5], ">= 10", True), (["iSCSI", "FC"], "s== FC", True), ([False, True], "<is> True", True),
    (["a", "b"], "<all-in> b a", True), (["a", "b"], "<all-in> a c", False), ([], "<all-in> a", False),
    ((), "x", False), ({"x"}, "x", True),
    # Documented differences from Cinder: plain values compare as strings, `s<` compares str() of both.
    (True, "True", True), (10, "10", True), (10, "s< 9", True), (10.0, "10", False),
])
def test_reference_edge_cases(capability: Any, requirement: str, expected: bool) -> None:
    assert matches(capability, requirement) is expected


@pytest.mark.parametrize("specs,failing", [
    # `capabilities:` keys walk nested capability dicts; a missing level fails.
    ({"capabilities:nested:level": ">= 2"}, None),
    ({"capabilities:nested:level": ">= 5"}, "nested:level"),
    ({"capabilities:nested:absent": "x"}, "nested:absent"),
    ({"capabilities:storage_protocol:deeper": "x"}, "storage_protocol:deeper"),
    # Other scopes are not capabilities, whatever they say.
    ({"provisioning:type": "thick", "qos:maxIOPS": "1", "RESKEY:availability_zones": "x"}, None),
    # The first failing key is named, in the order the type lists them.
    ({"vendor_name": "cinderblock", "QoS_support": "<is> True", "total_capacity_gb": "= 1000"}, "QoS_support"),
])
def test_satisfies_nested_and_scoped(specs: dict[str, str], failing: str | None) -> None:
    assert satisfies({**CAPS, "nested": {"level": 3}}, specs) == failing
