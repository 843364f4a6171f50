"""The package's layers (import-linter's contracts in pyproject.toml) and no import cycle anywhere in it."""
from __future__ import annotations

import subprocess
import sys

import grimp

from tests.conftest import REPO


def test_import_linter_contracts_are_kept():
    # The same contracts `lint-imports` checks by hand; run in the repository so it reads pyproject.toml.
    result = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                             "lint_imports_command()"], cwd=str(REPO), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_no_import_cycle_in_device():
    graph = grimp.build_graph("device", cache_dir=None)
    modules = sorted(graph.modules)
    # Tarjan-free: a module is on a cycle when it can reach itself through the modules it imports.
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(imported=module, importer=imported):
                cycles.append(f"{module} -> {imported} -> ... -> {module}")
    assert not cycles, "\n".join(cycles)
