"""The package's layers: imports only run downward, and the engine touches no file and no network.

``nstpipe/config/``, ``nstpipe/errors.py``, ``nstpipe/events.py`` and ``nstpipe/files.py`` are
pure Python and shared by every layer: they import no layer at all. Read from the source
(every ``import``, lazy ones inside functions and ``TYPE_CHECKING`` ones included, relative
ones resolved), so a module that reaches up a layer fails here before it makes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nstpipe"
# Each layer and what it may import besides itself and the shared modules.
BELOW = {
    "engine": set(),
    "media": set(),
    "modes": {"engine", "media"},  # torch-free at import: the CLI reads the specs for --help
    "jobs": {"engine", "media", "modes"},
    "run": {"engine", "media", "modes", "jobs"},
    "app": {"engine", "media", "modes", "jobs", "run"},
    "cli": {"modes", "app"},  # the drivers and the specs; no work of its own
    "__main__": {"cli"},
    "configs": set(),
}
SHARED = {"config", "errors", "events", "files", "__init__"}

# What the engine may not use, by the dotted name an import or a reference resolves to
# (aliases followed: ``import numpy as np; np.load`` is ``numpy.load``). A name matches
# itself and everything below it (``torch.hub`` matches ``torch.hub.load``).
# Modules that exist to reach files, processes, the terminal or the network; ``hashlib``
# and ``importlib`` because hashing or locating files was how weights got into the engine;
# torchvision's models, datasets and io because they download or read files.
IO_MODULES = (
    "os", "io", "sys", "pathlib", "shutil", "tempfile", "glob", "hashlib", "importlib", "pickle", "json",
    "csv", "sqlite3", "zipfile", "tarfile", "gzip", "mmap", "subprocess", "socket", "ssl", "http", "urllib",
    "requests", "PIL", "av", "matplotlib", "ray", "torch.hub", "torch.utils.model_zoo",
    "torchvision.models", "torchvision.datasets", "torchvision.io",
)
# The file functions of the libraries the engine does import (torch, numpy, OpenCV).
IO_FUNCTIONS = (
    "torch.load", "torch.save", "torch.hub", "torch.utils.model_zoo",
    "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.fromfile", "numpy.loadtxt",
    "numpy.savetxt", "numpy.genfromtxt", "numpy.memmap",
    "cv2.imread", "cv2.imreadmulti", "cv2.imwrite", "cv2.VideoCapture", "cv2.VideoWriter", "cv2.FileStorage", "cv2.dnn",
)
# Builtins that open files, print, read the terminal or import by a string.
IO_BUILTINS = {"open", "print", "input", "breakpoint", "__import__", "exec", "eval"}
# Methods that read or change files whatever object has them (a Path handed in by a caller,
# an array's tofile): matched by the method's name alone, since the receiver's type is not
# known from the source. No engine method may take these names.
IO_METHODS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "tofile", "unlink", "mkdir", "rmdir", "touch", "iterdir"}


def module_name(path: Path) -> str:
    """``nstpipe/media/video.py`` as ``nstpipe.media.video``; a package's ``__init__.py`` as the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer (or shared module) a dotted ``nstpipe.`` name belongs to; None outside the package."""
    parts = module.split(".")
    if module == "nstpipe":
        return "__init__"
    if len(parts) < 2 or parts[0] != "nstpipe":
        return None
    return parts[1] if parts[1] in BELOW or parts[1] in SHARED else None


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ... import``, relative ones resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(tree: ast.AST, module: str = "", is_package: bool = False) -> set[str]:
    """Every module named by an import anywhere in ``tree``, with ``from m import n`` as both m and m.n."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = resolve(node, module, is_package)
            found |= {f"{source}.{alias.name}" for alias in node.names} | {source}
    return found


def upward_imports(tree: ast.AST, module: str, is_package: bool = False) -> list[str]:
    """The ``nstpipe`` modules that ``module`` imports but its layer may not."""
    own = layer_of(module)
    assert own is not None, f"{module} is in no layer: add it to BELOW or SHARED"
    allowed = SHARED | ({own} | BELOW[own] if own in BELOW else set())
    return sorted(m for m in imported_modules(tree, module, is_package) if (layer := layer_of(m)) and layer not in allowed)


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in ``tree``."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """``np.load`` as ``numpy.load``; None for anything but a chain of names."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def io_uses(tree: ast.AST) -> list[str]:
    """What in ``tree`` reaches a file, the terminal or the network, as ``line: name``, in line order."""
    aliases = _aliases(tree)
    found = [
        f"{node.lineno}: import {name}"
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in imported_modules(node)
        if _matches(name, IO_MODULES)
    ]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = _dotted(node, aliases)
            if name and _matches(name, IO_FUNCTIONS):
                found.append(f"{node.lineno}: {name}")
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS and node.func.id not in aliases:
                found.append(f"{node.lineno}: {node.func.id}()")
            elif isinstance(node.func, ast.Attribute) and node.func.attr in IO_METHODS:
                found.append(f"{node.lineno}: .{node.func.attr}()")
    return sorted(set(found), key=lambda use: (int(use.split(":")[0]), use))


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    upward = upward_imports(parse(path), module_name(path), path.name == "__init__.py")
    assert not upward, f"{path.relative_to(PACKAGE.parent)} reaches up to {upward}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "engine").rglob("*.py")), ids=lambda p: p.name)
def test_the_engine_reaches_no_file_terminal_or_network(path: Path) -> None:
    uses = io_uses(parse(path))
    assert not uses, f"{path.relative_to(PACKAGE.parent)} does I/O: {uses}"


def test_the_check_sees_an_upward_import() -> None:
    lazy = ast.parse("def f():\n    from nstpipe.jobs.worker import ImageWorker\n")
    assert upward_imports(lazy, "nstpipe.engine.bad") == ["nstpipe.jobs.worker", "nstpipe.jobs.worker.ImageWorker"]
    assert upward_imports(lazy, "nstpipe.run.fine") == []


def test_the_check_sees_media_importing_the_engine() -> None:
    assert upward_imports(ast.parse("import nstpipe.engine.color\n"), "nstpipe.media.bad") == ["nstpipe.engine.color"]
    relative = ast.parse("from ..engine.tensors import prepare\n")
    assert upward_imports(relative, "nstpipe.media.bad") == ["nstpipe.engine.tensors", "nstpipe.engine.tensors.prepare"]
    assert upward_imports(relative, "nstpipe.jobs.fine") == []


def test_the_check_sees_a_shared_module_importing_a_layer_even_for_annotations() -> None:
    annotations_only = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nstpipe.jobs.plan import ImageTask\n"
    )
    assert upward_imports(annotations_only, "nstpipe.events") == ["nstpipe.jobs.plan", "nstpipe.jobs.plan.ImageTask"]
    assert upward_imports(ast.parse("from nstpipe.errors import InputError\n"), "nstpipe.events") == []


def test_the_io_check_sees_each_way_to_a_file_or_the_network() -> None:
    bad = ast.parse(
        "import hashlib\n"
        "import numpy as np\n"
        "import torch\n"
        "from torch import hub\n"
        "def f(path):\n"
        "    from torchvision.models import vgg19\n"
        "    torch.load(path)\n"
        "    np.save(path, 0)\n"
        "    with open(path) as fh:\n"
        "        print(fh)\n"
        "    hub.load('owner/repo', 'model')\n"
        "    return path.read_bytes()\n"
    )
    assert io_uses(bad) == [
        "1: import hashlib",
        "4: import torch.hub",
        "6: import torchvision.models",
        "6: import torchvision.models.vgg19",
        "7: torch.load",
        "8: numpy.save",
        "9: open()",
        "10: print()",
        "11: torch.hub",
        "11: torch.hub.load",
        "12: .read_bytes()",
    ]


def test_the_io_check_passes_tensor_work() -> None:
    fine = ast.parse(
        "import torch\nimport torch.nn.functional as F\nimport numpy as np\n"
        "def f(x, model):\n"
        "    model.load_state_dict({})\n"
        "    model.eval()\n"
        "    return F.pad(torch.flip(x, (1,)), (1, 1)), np.asarray(x)\n"
    )
    assert io_uses(fine) == []
