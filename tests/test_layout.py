"""The package layout of docs/architecture.md holds: no import cycle, every module in a layer, small modules.

The import direction itself is checked by ``lint-imports`` (tox -e lint) from the contracts in
pyproject.toml; these tests check what a contract cannot say.  Both skip the same imports: the
contracts' ``ignore_imports``, each a violation being fixed on a branch right now.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grimp
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "cas"
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]

MAX_LINES = 400
# Modules allowed past MAX_LINES, each with why.  An entry that is no longer needed fails too,
# so the list only shrinks.
LONG_MODULES = {
    "cas/core/records.py": "every record type's validating decoder in one place; chunk lists and packs (format 2) each added a line: split by record family next",
}
# Modules no layer of the contract names, each with why.
OUTSIDE_LAYERS = {
    "cas": "the public API: re-exports names from every layer",
    "cas._moved": "the old module paths, kept one release; imports nothing of cas statically",
    "cas.store": "the package re-exports the facade; its modules are in the layers",
}


def _modules() -> list[str]:
    names = []
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _in_flight() -> set[tuple[str, str]]:
    """The ``importer -> imported`` pairs every contract of pyproject.toml ignores."""
    pairs = set()
    for contract in CONTRACTS:
        for expression in contract.get("ignore_imports", []):
            importer, imported = (part.strip() for part in expression.split("->"))
            assert "*" not in importer + imported, f"a wildcard hides more than one import: {expression}"
            pairs.add((importer, imported))
    return pairs


def _graph() -> grimp.ImportGraph:
    graph = grimp.build_graph("cas", exclude_type_checking_imports=True, cache_dir=None)
    for importer, imported in _in_flight():
        if graph.direct_import_exists(importer=importer, imported=imported):  # else lint-imports says it is stale
            graph.remove_import(importer=importer, imported=imported)
    return graph


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_at_run_time():
    """No module reaches itself through imports that run (TYPE_CHECKING imports do not, lazy ones do).

    This sees what lint-imports' acyclic contract cannot: cycles through a parent package, such as
    a module importing ``cas`` itself, whose ``__init__`` imports every layer.
    """
    graph = _graph()
    report = []
    for component in _cycles(graph):
        report.append("cycle: " + ", ".join(component))
        for importer in component:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & set(component)):
                for line in graph.get_import_details(importer=importer, imported=imported):
                    report.append(f"  {importer} -> {imported} (l.{line['line_number']}: {line['line_contents']})")
    assert not report, "\n".join(report)


_IMPORT_ALONE = """
import importlib, sys
try:
    importlib.import_module(sys.argv[1])
except ModuleNotFoundError as e:
    if (e.name or "cas").partition(".")[0] == "cas":
        raise
    print("needs", e.name)  # an optional dependency this environment lacks (an extra)
"""


def test_every_module_imports_alone():
    """Each module imports first in a fresh interpreter: no import order hides a cycle."""

    def run(module: str) -> tuple[str, subprocess.CompletedProcess]:
        # -I: the installed package, not whatever the working directory holds
        cmd = [sys.executable, "-I", "-W", "error::DeprecationWarning", "-c", _IMPORT_ALONE, module]
        return module, subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(run, _modules()))
    failed = [f"{module}:\n{done.stderr.strip()[-2000:]}" for module, done in results if done.returncode]
    assert not failed, "\n\n".join(failed)
    imported = [module for module, done in results if not done.stdout.startswith("needs ")]
    assert "cas.store.facade" in imported and "cas.cli.main" in imported


def test_every_module_is_in_a_layer():
    """A module no layer names is checked by no contract: name it in pyproject.toml's layers."""
    layers = next(c for c in CONTRACTS if c["type"] == "layers" and "containers" not in c)["layers"]
    named = {part.strip().strip("()") for layer in layers for part in layer.replace("|", ":").split(":")}
    outside = [
        m for m in _modules() if m not in OUTSIDE_LAYERS and not any(m == n or m.startswith(n + ".") for n in named)
    ]
    assert not outside, f"in no layer of pyproject.toml's [tool.importlinter] contract: {outside}"


def test_modules_stay_small():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in sorted(SOURCE.rglob("*.py"))}
    too_long = {path: n for path, n in sizes.items() if n > MAX_LINES and path not in LONG_MODULES}
    assert not too_long, f"over {MAX_LINES} lines: split by responsibility: {too_long}"
    stale = [path for path in LONG_MODULES if sizes.get(path, 0) <= MAX_LINES]
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): delete from LONG_MODULES: {stale}"


@pytest.mark.parametrize("init", sorted(str(p.relative_to(ROOT)) for p in SOURCE.rglob("__init__.py")))
def test_every_package_says_what_lives_there(init):
    """Each package's ``__init__`` opens with a docstring whose first line says what lives there."""
    tree = ast.parse((ROOT / init).read_text())
    docstring = ast.get_docstring(tree)
    assert docstring and docstring.splitlines()[0].strip(), f"{init} must start with a docstring"
