"""Boolean extra specs and group specs (`replication_enabled='<is> True'`): the one reader.

The API (replication_status, multiattach), the scheduler's `<is>` operator, the group rules and every
driver (`VolumeRef.replicated`) read boolean specs here, so they cannot disagree about a volume.

Grammar (Cinder's `<is>` operator, cinder/scheduler/filters/extra_specs_ops.py): the value split on
whitespace is exactly two words, the operator `<is>` and a boolean word of oslo's bool_from_string
(true: 1 t true on y yes; false: 0 f false off n no). Any case, any amount of whitespace:
`<is> True`, `<is>  TRUE`, `<IS> yes` are true; `<is> False`, `<is> no` false.

Refused (`None` from `parse_bool_spec`), for every key in BOOLEAN_SPEC_KEYS:
- `<is>True` (no space): Cinder's scheduler does not see an operator and compares the whole string
  with the capability, which never matches a boolean; volume_utils.is_replicated_spec says False.
- a bare `True`: Cinder's scheduler compares it as a string with the boolean capability True (never
  equal) and its API (`== '<is> True'`) reads it as False, so in Cinder such a type is unusable.
- `<is> maybe`, `<is> True False`: no boolean word, or more than one.
Cinder stores any of these and reads them differently in different places; cinderblock refuses them
when a type or group type is written (`check_boolean_specs`, 400 naming the accepted form).

Where Cinder's readers disagree with each other, this follows the scheduler (the only one with a
grammar): `<is> yes` and `<is>  TRUE` are true here and in Cinder's scheduler, while Cinder's
volume_utils.is_replicated_spec (`lower() == '<is> true'`) would say False. That is deliberate.

A malformed value already stored (written before this check, or straight into the database) reads as
not set at all: not-true for the API, the drivers and the group rules, and no requirement for the
scheduler. The domain logs a warning when a volume is created from such a type (see malformed_specs).
"""
from __future__ import annotations

from collections.abc import Mapping

from cinderblock.model.errors import InvalidInput

IS = "<is>"
TRUE_WORDS = frozenset({"1", "t", "true", "on", "y", "yes"})
FALSE_WORDS = frozenset({"0", "f", "false", "off", "n", "no"})
ACCEPTED_FORM = "'<is> True' or '<is> False'"

SCOPE = "capabilities:"
# Keys whose value is a boolean: what cinderblock itself reads from a type or group type, and the
# boolean capabilities its drivers report (so a type that asks for one asks in the one grammar).
BOOLEAN_SPEC_KEYS = frozenset({
    "replication_enabled", "multiattach", "cacheable",
    "consistent_group_snapshot_enabled", "consistencygroup_support",
    "group_replication_enabled", "consistent_group_replication_enabled",
    "thin_provisioning_support", "thick_provisioning_support", "QoS_support",
})


def parse_bool_word(word: object) -> bool | None:
    """A boolean word of oslo's bool_from_string, any case; None for anything else."""
    text = str(word).strip().lower()
    return True if text in TRUE_WORDS else False if text in FALSE_WORDS else None


def parse_bool_spec(value: str | None) -> bool | None:
    """`<is> <boolean word>` → that boolean; None when the value is not in that form (or absent)."""
    words = (value or "").split()
    if len(words) != 2 or words[0].lower() != IS:
        return None
    return parse_bool_word(words[1])


def is_boolean_key(key: str) -> bool:
    """`replication_enabled` and `capabilities:replication_enabled` alike."""
    return (key[len(SCOPE):] if key.startswith(SCOPE) else key) in BOOLEAN_SPEC_KEYS


def spec_is_true(specs: Mapping[str, str] | None, key: str) -> bool:
    """The spec says `<is> True` (in any accepted spelling). Absent or malformed: False."""
    return parse_bool_spec((specs or {}).get(key)) is True


def malformed_specs(specs: Mapping[str, str] | None) -> dict[str, str]:
    """The boolean keys whose value the grammar cannot read (to refuse, or to warn about)."""
    return {key: value for key, value in (specs or {}).items()
            if is_boolean_key(key) and parse_bool_spec(value) is None}


def malformed_message(specs: Mapping[str, str] | None, what: str = "extra spec") -> str | None:
    """The 400 message for the first malformed boolean spec, None when there is none."""
    bad = malformed_specs(specs)
    if not bad:
        return None
    key, value = next(iter(bad.items()))
    return (f"Invalid input received: {what} {key}={value!r} is not a boolean cinderblock can read: use "
            f"{ACCEPTED_FORM} (the <is> operator, whitespace, then true/false, yes/no, on/off, 1/0, t/f "
            f"or y/n in any case).")


def check_boolean_specs(specs: Mapping[str, str] | None, what: str = "extra spec") -> None:
    """Refuse (InvalidInput, 400) a type or group type write whose boolean spec is malformed."""
    message = malformed_message(specs, what)
    if message is not None:
        raise InvalidInput(message)
