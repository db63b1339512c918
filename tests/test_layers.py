"""The ground floor (errors, locks, storage, distributed) imports nothing above it, so every
module may use it without an import circle."""

import ast
from pathlib import Path

import benchmark

GROUND = {"benchmark.errors", "benchmark.locks", "benchmark.storage", "benchmark.distributed"}
ROOT = Path(benchmark.__file__).parent


def _benchmark_imports(module: str) -> set[str]:
    path = ROOT / f"{module.removeprefix('benchmark.')}.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmark"):
            names = (
                [f"{node.module}.{a.name}" for a in node.names]
                if node.module == "benchmark"
                else [node.module]
            )
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("benchmark"))
    return found


def test_the_ground_floor_imports_only_the_ground_floor():
    for module in sorted(GROUND):
        assert _benchmark_imports(module) <= GROUND, module
