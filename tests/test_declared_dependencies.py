"""Every third-party package the code imports is declared in pyproject.toml: the service's in
``dependencies``, the tests' in the ``test`` extra, the benchmarks' in the ``bench`` extra. A
package that is only installed on the developer's machine fails here in seconds, not in CI on
a fresh machine."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from fhir_bridge import PROJECT_ROOT

PYPROJECT = PROJECT_ROOT / "pyproject.toml"
#: Top-level names that are the project's own code, not distributions.
LOCAL = {"fhir_bridge", "tests", "bench"} | {p.stem for p in (PROJECT_ROOT / "bench").glob("*.py")}
#: Which declarations each folder may rely on.
FOLDERS = {"fhir_bridge": (), "tests": ("test",), "bench": ("bench",)}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(pyproject: str, extras: tuple[str, ...]) -> set[str]:
    """The distributions named by ``dependencies`` and the given extras."""
    project = tomllib.loads(pyproject)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    return {normalize(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group()) for r in requirements}


def third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level module -> the first place (file:line) that imports it, for every import
    statement of the folder, nested ones included (a fixture's ``import requests`` too)."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in LOCAL:
                    continue
                found.setdefault(top, f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    return found


def undeclared(folder: str, pyproject: str) -> list[str]:
    """One line per third-party import of ``folder`` whose distribution is not declared."""
    allowed = declared(pyproject, FOLDERS[folder])
    installed = packages_distributions()
    problems = []
    for module, where in sorted(third_party_imports(PROJECT_ROOT / folder).items()):
        distributions = installed.get(module)
        if not distributions:
            problems.append(f"{where}: imports {module!r}, which no installed distribution "
                            "provides: declare it in pyproject.toml")
        elif not {normalize(d) for d in distributions} & allowed:
            problems.append(f"{where}: imports {module!r} from {' or '.join(distributions)}, "
                            f"which pyproject.toml does not declare for {folder}/")
    return problems


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_every_third_party_import_is_declared(folder):
    assert undeclared(folder, PYPROJECT.read_text(encoding="utf-8")) == []


def test_removing_a_declared_test_dependency_is_caught():
    pyproject = PYPROJECT.read_text(encoding="utf-8")
    without = re.sub(r'^\s*"responses[^"]*",\n', "", pyproject, flags=re.MULTILINE)
    assert without != pyproject
    problems = undeclared("tests", without)
    assert problems and all("'responses'" in p for p in problems), problems


def _modules(package: str, skip: tuple[str, ...] = ()) -> list[str]:
    root = importlib.import_module(package)
    return sorted(info.name for info in pkgutil.walk_packages(root.__path__, package + ".")
                  if not info.name.startswith(skip))


@pytest.mark.parametrize("module", _modules("fhir_bridge", skip=("fhir_bridge.store.migrations",))
                         + _modules("tests"))
def test_every_module_imports(module):
    """A missing distribution shows up as the module that cannot be imported."""
    importlib.import_module(module)
