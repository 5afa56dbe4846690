"""Cinder's extra-spec grammar, matched against one capability value.

    "<is> True"      boolean equality          "<in> abc"      substring of the capability
    "<or> a <or> b"  equals one of             "<all-in> a b"  every word in a capability list
    "= 10"           number at least 10        "== 10"         number equal
    "!= 10" ">= 10" "<= 10"                    numeric comparisons
    "s== x" "s!= x" "s< x" "s<= x" "s> x" "s>= x"  string comparisons
    anything else    plain equality (a capability list matches if one of its items does)

Deliberate differences from Cinder's extra_specs_ops (documented, tested): plain values compare as
strings, so the boolean capability True matches "True" (Cinder needs "<is> True"); `s<` and friends
compare str() of both sides instead of raising TypeError on mixed types; `<or>` alternatives may
contain spaces. A capability of None fails every requirement; a non-number fails numeric operators.

`<is>` is read by model/specs.py, the parser the API and the drivers use too: the operator in any case,
then one boolean word (`<is> maybe` matches nothing, where Cinder would read it as False). A boolean
key (specs.BOOLEAN_SPEC_KEYS) whose stored value that parser cannot read (`<is>True`, a bare `True`:
refused when a type is written, but an older database may hold one) is no requirement at all, as it is
not-true for the API and the driver: `capability_requirements` leaves it out.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from cinderblock.model.specs import IS, is_boolean_key, parse_bool_spec, parse_bool_word

Predicate = Callable[[Any], bool]

_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": operator.ge, "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
}
_STRING: dict[str, Callable[[str, str], bool]] = {
    "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le,
    "s>": operator.gt, "s>=": operator.ge,
}
_OPERATORS = (IS, "<in>", "<all-in>", "<or>", *_NUMERIC, *_STRING)
_LISTS = (list, tuple, set, frozenset)
# Types may ask for these; a backend that does not report them lacks them (counts as False).
DEFAULT_FALSE = ("multiattach", "replication_enabled")


def _as_bool(value: Any) -> bool:
    """A capability's value as a boolean (anything but a true word is False, as oslo's)."""
    return parse_bool_word(value) is True


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _single(requirement: str) -> Predicate:
    """The test of one (non-list) capability value."""
    words = requirement.split()
    op = words[0] if words else ""
    if op.lower() == IS:
        wanted = parse_bool_spec(requirement)
        if wanted is None:
            return lambda cap: False  # no operand, or not one boolean word
        return lambda cap: cap is not None and _as_bool(cap) == wanted
    if op not in _OPERATORS:
        return lambda cap: cap is not None and (str(cap) == requirement if not isinstance(cap, bool)
                                                else cap == _as_bool(requirement))
    rest = requirement.strip()[len(op):].strip()
    if not rest:
        return lambda cap: False  # an operator without an operand matches nothing (Cinder)
    if op == "<in>":
        return lambda cap: cap is not None and rest in str(cap)
    if op == "<or>":
        choices = frozenset(choice.strip() for choice in requirement.split("<or>") if choice.strip())
        return lambda cap: cap is not None and str(cap) in choices
    if op in _NUMERIC:
        compare, number = _NUMERIC[op], _as_float(rest)
        if number is None:
            return lambda cap: False

        def numeric(cap: Any) -> bool:
            have = _as_float(cap)
            return have is not None and compare(have, number)

        return numeric
    compare_str = _STRING[op]
    return lambda cap: cap is not None and compare_str(str(cap), rest)


@functools.lru_cache(maxsize=4096)
def compile_requirement(requirement: str) -> Predicate:
    """requirement → predicate over a capability value (compiled once, reused for every pool)."""
    stripped = requirement.strip()
    if stripped.startswith("<all-in>"):
        wanted = stripped[len("<all-in>"):].split()

        def all_in(cap: Any) -> bool:
            if not wanted or cap is None:
                return False
            items = [str(item) for item in cap] if isinstance(cap, _LISTS) else str(cap).split()
            return all(word in items for word in wanted)

        return all_in
    single = _single(requirement)

    def predicate(cap: Any) -> bool:
        if isinstance(cap, _LISTS):
            return any(single(item) for item in cap)
        return single(cap)

    return predicate


def matches(capability: Any, requirement: str) -> bool:
    """True when `capability` satisfies `requirement`."""
    return compile_requirement(requirement)(capability)


def capability_requirements(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """The specs that name capabilities: `capabilities:key` or an unscoped key without a colon.
    Further colons in a `capabilities:` key walk nested capability dicts (`capabilities:a:b`)."""
    wanted: dict[str, str] = {}
    for key, value in extra_specs.items():
        if is_boolean_key(key) and parse_bool_spec(value) is None:
            continue  # malformed (stored before the write-time check): not set, as for the API and driver
        if key.startswith("capabilities:"):
            wanted[key.split(":", 1)[1]] = value
        elif ":" not in key:
            wanted[key] = value
    return wanted


MISSING = object()


def lookup(capabilities: Mapping[str, Any], key: str) -> Any:
    """The capability a requirement key names (nested with ':'), or MISSING."""
    value: Any = capabilities
    for part in key.split(":"):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def satisfies(capabilities: Mapping[str, Any], extra_specs: Mapping[str, str]) -> str | None:
    """None when every capability requirement holds; otherwise the first key that fails."""
    for key, requirement in capability_requirements(extra_specs).items():
        value = lookup(capabilities, key)
        if value is MISSING:
            if key in DEFAULT_FALSE:
                value = False
            else:
                return key
        if not matches(value, requirement):
            return key
    return None
