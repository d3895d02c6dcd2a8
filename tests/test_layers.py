"""The package's layering, enforced: data flows one way and no layer imports one above it.

capture -> flows -> transports -> dcerpc -> output -> engine -> parallel -> cli. Beside them sit shared
leaves any layer may use (``errors``, ``limits``, ``records``, ``catalog``, ``auth``, ``runtime``);
a leaf imports no layer. Imports under ``if TYPE_CHECKING:`` are annotations only and not counted.
Also checked here: no module passes the ~600-line mark the project keeps files under.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PKG = REPO / "rpcinspect"
LAYERS = ["capture", "flows", "transports", "dcerpc", "output", "engine", "parallel", "cli"]
LEAVES = {"errors", "limits", "records", "catalog", "auth", "runtime", "__init__"}
MAX_LINES = 600


def unit(path: Path) -> str:
    parts = path.relative_to(PKG).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, target unit)`` of every import of the package outside ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "rpcinspect":
                names = [a.name for a in node.names]
            elif node.module.startswith("rpcinspect."):
                names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("rpcinspect.")]
        out += [(node.lineno, n) for n in names]
    return out


FILES = sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(PKG)) for p in FILES])
def test_no_layer_imports_a_layer_above_it(path: Path) -> None:
    me = unit(path)
    if me in ("__main__",) or me == "__init__":
        return  # the package root re-exports the public API; __main__ runs the CLI
    bad = []
    for line, target in runtime_imports(ast.parse(path.read_text())):
        if target == me or target == "__version__":
            continue
        if me in LEAVES:
            if target not in LEAVES:
                bad.append(f"line {line}: leaf {me} imports layer {target}")
        elif target not in LEAVES and LAYERS.index(target) > LAYERS.index(me):
            bad.append(f"line {line}: {me} imports {target}, a layer above it")
    assert not bad, bad


def test_the_check_sees_violations() -> None:
    """The import walker is not vacuous: it finds a planted upward import, and skips type-only ones."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nfrom rpcinspect.dcerpc.association import Association\n"
        "if TYPE_CHECKING:\n    from rpcinspect.engine import analyze\n"
    )
    assert runtime_imports(tree) == [(2, "dcerpc")]


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(PKG)): n for p in FILES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"split these (over {MAX_LINES} lines): {big}"
