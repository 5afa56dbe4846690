"""Imports run one way (issue 13 §4): api → domain → rpc → scheduler | volume → db, with placement, model
and config below everything that reads them. An AST scan of cinderblock/ finds every import between
top-level packages (function-level and TYPE_CHECKING imports too) and checks it against LAYERS.

`python tests/unit/test_layers.py` prints the layer graph: each edge with its number of imports
(file → module pairs)."""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cinderblock"
BELOW = frozenset({"model", "config"})

# Layer → the layers its modules may import (a layer may always import itself).
LAYERS: Mapping[str, frozenset[str]] = {
    # Entry points and the composition root: they build every service, so they see every layer.
    "__main__": frozenset({"cli"}),
    "cli": frozenset({"runtime", "api", "domain", "rpc", "scheduler", "volume", "placement", "db", "coordination"})
    | BELOW,
    "runtime": frozenset({"api", "domain", "rpc", "scheduler", "volume", "placement", "db", "coordination"}) | BELOW,
    # The one exception: the API's views still render ORM rows (`db.tables`) instead of typed records
    # from the domain; until they do, api may import db (issue 13 §4, typed records at the API edge).
    "api": frozenset({"domain", "db"}) | BELOW,
    "domain": frozenset({"rpc", "placement", "db"}) | BELOW,
    # rpc carries the domain's requests to the services; it imports none of them. The services import
    # rpc's clients to call one another (scheduler → volume casts, volume → scheduler reports).
    "rpc": BELOW,
    "scheduler": frozenset({"rpc", "placement", "db"}) | BELOW,
    "volume": frozenset({"rpc", "db", "coordination"}) | BELOW,
    # Pure placement (pool states, capacity, filters, weighers): no database, no messaging.
    "placement": BELOW,
    "coordination": BELOW,
    "db": BELOW,
    "config": frozenset({"model"}),
    "model": frozenset(),
    # Development servers and the conformance run; they stand apart from the package.
    "devtools": frozenset(),
}
# `cinderblock/__init__.py` holds only the version; any layer may read it.
ROOT = "cinderblock"


def _layer_of(module: str) -> str:
    """`cinderblock.domain.volumes` → `domain`; `cinderblock.cli` → `cli`; `cinderblock` → ROOT."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__init__":
        return ROOT
    return parts[1]


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Module names `tree` imports, relative imports resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == ROOT:  # `from cinderblock import api` names a layer; `__version__` the root
                yield from (f"{ROOT}.{alias.name}" if alias.name in LAYERS else ROOT for alias in node.names)
            else:
                yield name


def edges(sources: Mapping[str, str]) -> dict[tuple[str, str], list[str]]:
    """(importing layer, imported layer) → ["path → module", ...] for sources keyed by path under
    the package's parent (`cinderblock/domain/volumes.py`)."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path, text in sources.items():
        parts = Path(path).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        module = ".".join(parts[:-1] if is_package else parts)
        source = _layer_of(module)
        for name in sorted(set(_imported(ast.parse(text, path), module, is_package))):
            if name.split(".")[0] != ROOT:
                continue
            target = _layer_of(name)
            if target not in (source, ROOT):
                found[(source, target)].append(f"{path} → {name}")
    return dict(found)


def wrong_way(found: Mapping[tuple[str, str], list[str]]) -> list[str]:
    """The imports LAYERS does not allow (a layer missing from LAYERS allows nothing)."""
    return [line for (source, target), lines in sorted(found.items())
            if target not in LAYERS.get(source, frozenset()) for line in lines]


def package_sources() -> dict[str, str]:
    return {str(path.relative_to(PACKAGE.parent)): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def render(found: Mapping[tuple[str, str], list[str]]) -> str:
    """One line per layer: the layers it imports, with the number of imports of each."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for (source, target), lines in sorted(found.items()):
        by_source[source].append(f"{target} {len(lines)}")
    return "\n".join(f"{source:<12} → {', '.join(targets)}" for source, targets in sorted(by_source.items()))


def test_imports_run_one_way() -> None:
    found = edges(package_sources())
    print("\n" + render(found))
    assert wrong_way(found) == []


def test_every_layer_is_placed() -> None:
    """A new top-level package or module must take its place in LAYERS before it may import anything."""
    tops = {path.stem for path in PACKAGE.iterdir() if path.suffix == ".py" or (path / "__init__.py").exists()}
    assert tops - {"__init__"} <= set(LAYERS)


def test_the_allowed_directions_have_no_cycle() -> None:
    """Allowed imports form a ranking: no two layers may import each other, even through others."""
    placed: list[str] = []
    remaining = dict(LAYERS)
    while remaining:
        ready = [layer for layer, allowed in remaining.items() if allowed <= set(placed)]
        assert ready, f"cycle among {sorted(remaining)}"
        placed += ready
        for layer in ready:
            del remaining[layer]


def test_a_wrong_way_import_is_reported() -> None:
    sources = {
        "cinderblock/domain/volumes.py": "from cinderblock.scheduler import pools\n",
        "cinderblock/config/settings.py": "def f():\n    from cinderblock.volume.driver import VolumeDriver\n",
        "cinderblock/scheduler/manager.py": "from ..domain import messages\n",
        "cinderblock/db/engine.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import cinderblock.api\n",
        "cinderblock/api/routers/x.py": "from cinderblock.db import tables\nfrom cinderblock import __version__\n",
        "cinderblock/volume/x.py": "from cinderblock import scheduler\n",
    }
    assert wrong_way(edges(sources)) == [
        "cinderblock/config/settings.py → cinderblock.volume.driver",
        "cinderblock/db/engine.py → cinderblock.api",
        "cinderblock/domain/volumes.py → cinderblock.scheduler",
        "cinderblock/scheduler/manager.py → cinderblock.domain",
        "cinderblock/volume/x.py → cinderblock.scheduler",
    ]


if __name__ == "__main__":
    graph = edges(package_sources())
    print(render(graph))
    for line in wrong_way(graph):
        print("wrong way:", line, file=sys.stderr)
