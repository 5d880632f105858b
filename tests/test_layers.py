"""The package's layers: no package imports a package above it, and the torch-free ones stay torch-free.

A "package" here is a top-level module or sub-package of symda (symda.config, symda.pipeline, ...).
Every import counts, at module level or inside a function (an import inside a function is still a
dependency), except those under `if TYPE_CHECKING:` (type names only, never run). LAYERS is
docs/architecture.md's picture of the code, bottom first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "symda"

LAYERS = [
    {"symda.io", "symda.select", "symda.models"},  # nothing of symda below them
    {"symda.terms", "symda.records", "symda.artifacts", "symda.pictures"},
    {"symda.config"},
    {
        "symda.data",
        "symda.checkpoints",
        "symda.distributed",
        "symda.dry_run",
        "symda.run_folder",
        "symda.preflight",
    },
    {"symda.evaluate", "symda.training", "symda.stage_keys", "symda.tracking", "symda.results"},
    {"symda.pseudo", "symda.legacy_keys", "symda.reports"},
    {"symda.adapt", "symda.translate"},
    {"symda.pipeline"},
    {"symda.sweeps"},
    {"symda.cli"},
    {"symda.__main__"},
]
LAYER = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def unit(module: str) -> str:
    """The package a dotted module belongs to: symda.pipeline.run -> symda.pipeline."""
    return ".".join(module.split(".")[:2])


def imports(path: Path) -> set[str]:
    """The symda packages a file imports, anywhere in it but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "symda":  # from symda import stage_keys (not __version__: the root's own)
                found |= {f"symda.{a.name}" for a in node.names
                          if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").is_file()}  # fmt: skip
            else:
                found.add(node.module)
    return {unit(m) for m in found if m.startswith("symda.")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_package_has_a_layer():
    units = {unit(module_name(p)) for p in ROOT.rglob("*.py")} - {"symda"}
    assert units <= set(LAYER), f"add {sorted(units - set(LAYER))} to LAYERS (and to docs/architecture.md)"


def test_no_package_imports_a_package_above_it_or_beside_it():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        own = unit(module_name(path))
        if own == "symda":
            continue
        for target in imports(path) - {own}:
            if LAYER[target] >= LAYER[own]:
                wrong.append(f"{path.relative_to(ROOT.parent)}: {own} (layer {LAYER[own]}) imports {target} "
                             f"(layer {LAYER[target]})")  # fmt: skip
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("modules", ["symda.config, symda.terms, symda.records, symda.results, symda.reports",
                                     "symda.select, symda.select.stats"])  # fmt: skip
def test_the_packages_analysis_reads_import_without_torch_or_ray(modules):
    code = f"import sys, {modules}; bad = {{'torch', 'ray'}} & set(sys.modules); assert not bad, bad"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
