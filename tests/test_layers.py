"""The package's layers: imports only run downward, from cli to app, run, jobs, media and engine.

``nstpipe/config.py``, ``nstpipe/errors.py`` and ``nstpipe/events.py`` are pure Python and
shared by every layer. Read from the source (every ``import``, lazy ones inside functions
included), so a module that reaches up a layer fails here before it makes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nstpipe"
# Each layer and what it may import besides itself and the shared modules.
BELOW = {
    "engine": set(),
    "media": {"engine"},
    "modes": {"engine", "media"},  # torch-free at import: the CLI reads the specs for --help
    "jobs": {"engine", "media", "modes"},
    "run": {"engine", "media", "modes", "jobs"},
    "app": {"engine", "media", "modes", "jobs", "run"},
    "cli": {"modes", "app"},  # the drivers and the specs; no work of its own
    "__main__": {"cli"},
    "configs": set(),
}
SHARED = {"config", "errors", "events", "__init__"}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "nstpipe" and parts[1] in BELOW else None


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {m for m in found if m.startswith("nstpipe.")}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
    if own in SHARED:
        allowed: set[str] = set()  # the shared modules import no layer (annotations aside)
    else:
        allowed = BELOW[own] | {own}
    upward = sorted(m for m in imported_modules(path) if (layer := layer_of(m)) and layer not in allowed)
    if own == "events":  # names ImageTask in annotations only (under TYPE_CHECKING)
        upward = [m for m in upward if not m.startswith("nstpipe.jobs.plan")]
    assert not upward, f"{relative} reaches up to {upward}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from nstpipe.jobs.worker import ImageWorker\n")
    assert layer_of("nstpipe.jobs.worker") == "jobs"
    assert "nstpipe.jobs.worker" in imported_modules(bad)
    assert "jobs" not in BELOW["engine"]
