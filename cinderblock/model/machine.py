"""What a declared state machine is made of: named transitions and the operations built from them.

A resource's state lives in a few columns (a volume's `status`, `attach_status`, `migration_status`
and `replication_status`; a service's `replication_status` and `active_backend_id`...). Each legal
change of them is a `Transition`: one column moved from some states to a state, plus the other state
columns it may write alongside. `db/transition.py` is the one writer: it turns a transition into a
compare-and-swap, and refuses a value the transition does not declare. The tables are declared in
model/transitions.py (volumes, snapshots, attachments) and model/group_transitions.py (groups, group
snapshots, services' replication).

An `Operation` is the common shape of a request (practice 1 of the house style): the domain claims
`transient` from `from_states`, the volume service's workflow ends it in `success` (None: the status
it had before, kept in `previous_status`) or `failure`, and a request whose cast never left is undone
back to what it was.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

State = str | None
# In `to_states`: the caller may leave the column as it is (an admin's reset that names other columns only).
KEEP = "<keep>"


@dataclass(frozen=True)
class Transition:
    name: str
    resource: str
    column: str
    # None: from any state of the column.
    from_states: frozenset[str] | None
    # The states it may end in; one is written unless the caller names another of them. None: the column
    # is left as it is (a guarded touch: the row must be in `from_states`, nothing of its state changes).
    to_states: frozenset[str] | None
    # Other state columns it may write, each with the values it may write there (None: any value, for
    # a column whose values are names, like a service's active backend).
    also: Mapping[str, frozenset[State] | None] = field(default_factory=lambda: MappingProxyType({}))
    # May set the column from the row's own `previous_status` (a SQL expression: a bulk restore).
    restores: bool = False

    @property
    def to(self) -> str:
        assert self.to_states is not None and len(self.to_states) == 1, f"{self.name} has no single target"
        return next(iter(self.to_states))

    def describe_from(self) -> str:
        return " or ".join(sorted(self.from_states or ()))


@dataclass(frozen=True)
class Operation:
    """claim: from_states → transient; succeed: → success (None: back to previous); fail: → failure;
    undo (the cast could not be sent): → back to any state it was claimed from."""

    name: str
    resource: str
    from_states: frozenset[str]
    transient: str
    success: str | None
    failure: str
    column: str = "status"
    # Other state columns the success or the failure may write too (a driver says whether a new volume
    # replicates; a group whose replication failed goes to error).
    success_also: Mapping[str, frozenset[State] | None] = field(default_factory=lambda: MappingProxyType({}))
    failure_also: Mapping[str, frozenset[State] | None] = field(default_factory=lambda: MappingProxyType({}))

    def describe_from(self) -> str:
        return " or ".join(sorted(self.from_states))

    @property
    def claim(self) -> Transition:
        return Transition(f"{self.name}.claim", self.resource, self.column, self.from_states,
                          frozenset({self.transient}))

    @property
    def succeed(self) -> Transition:
        ends = {self.success} if self.success is not None else set(self.from_states)
        return Transition(f"{self.name}.succeed", self.resource, self.column, frozenset({self.transient}),
                          frozenset(ends), self.success_also)

    @property
    def fail(self) -> Transition:
        return Transition(f"{self.name}.fail", self.resource, self.column, frozenset({self.transient}),
                          frozenset({self.failure}), self.failure_also)

    @property
    def undo(self) -> Transition:
        return Transition(f"{self.name}.undo", self.resource, self.column, frozenset({self.transient}),
                          self.from_states or frozenset({self.transient}))


@dataclass
class Machine:
    """One resource's state columns, each with every state it can hold, and its declared changes."""

    resource: str
    # Each state column with every value it can hold (None: any value, see Transition.also).
    columns: Mapping[str, frozenset[State] | None]
    transitions: dict[str, Transition] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)

    def transition(self, name: str, column: str, from_states: Collection[State] | None,
                   to_states: Collection[State] | None, also: Mapping[str, Iterable[State] | None] | None = None,
                   restores: bool = False) -> Transition:
        declared = Transition(name, self.resource, column, _frozen(from_states), _frozen(to_states),
                              _also(also), restores)
        self._check(declared)
        self.transitions[name] = declared
        return declared

    def operation(self, name: str, from_states: Collection[str], transient: str, success: str | None,
                  failure: str, column: str = "status",
                  success_also: Mapping[str, Iterable[State] | None] | None = None,
                  failure_also: Mapping[str, Iterable[State] | None] | None = None) -> Operation:
        declared = Operation(name, self.resource, frozenset(str(s) for s in from_states), str(transient),
                             None if success is None else str(success), str(failure), column, _also(success_also),
                             _also(failure_also))
        assert name not in self.transitions and name not in self.operations, f"{self.resource}.{name} declared twice"
        for step in (declared.claim, declared.succeed, declared.fail, declared.undo):
            self._check(step)
        self.operations[name] = declared
        return declared

    def _check(self, transition: Transition) -> None:
        assert transition.column in self.columns, f"{self.resource} has no state column {transition.column}"
        key = transition.name
        assert key not in self.transitions and key not in self.operations, f"{self.resource}.{key} declared twice"
        self._known(transition.name, transition.column, transition.from_states)
        self._known(transition.name, transition.column, (transition.to_states or frozenset()) - {KEEP})
        for column, values in transition.also.items():
            assert column in self.columns and column != transition.column, f"{transition.name}: {column}"
            self._known(transition.name, column, values)

    def _known(self, name: str, column: str, values: Iterable[State] | None) -> None:
        states = self.columns[column]
        if states is None or values is None:
            return
        unknown = set(values) - states
        assert not unknown, f"{self.resource}.{name}: unknown {column} values {sorted(map(str, unknown))}"


def _also(also: Mapping[str, Iterable[State] | None] | None) -> Mapping[str, frozenset[State] | None]:
    return MappingProxyType({column: None if values is None
                             else frozenset(None if v is None else str(v) for v in values)
                             for column, values in (also or {}).items()})


def _frozen(states: Collection[State] | None) -> frozenset[str] | None:
    return None if states is None else frozenset(str(s) for s in states if s is not None)


def states_of(*enums: Iterable[object], extra: Iterable[State] = ()) -> frozenset[State]:
    return frozenset([*(str(s) for enum in enums for s in enum), *extra])
