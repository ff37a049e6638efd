"""The package's shape: no import cycle between crossfk's modules (not even
one behind an import inside a function), the documented check ids, one
version, and classifiers that name what the test matrix (noxfile.py) tests."""

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

import crossfk

PACKAGE = Path(crossfk.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The crossfk modules ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # from crossfk import checks: a submodule, not a name.
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(name):
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        if name in done:
            return None
        visiting.append(name)
        for imported in sorted(graph[name]):
            if cycle := visit(imported):
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        if cycle := visit(name):
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "crossfk.placement" in graph["crossfk.routers"]
    assert "crossfk.relations" in graph["crossfk.transaction"]


def test_no_import_cycle_between_crossfks_modules():
    # The package's __init__ imports its public names from the modules; a
    # module importing the package itself would close a cycle through it.
    assert find_cycle(import_graph()) is None


def test_the_documented_check_ids_are_the_ones_the_code_emits():
    emitted = set()
    for path in PACKAGE.rglob("*.py"):
        emitted |= set(re.findall(r'"(crossfk\.[EW]\d{3})"', path.read_text()))
    page = (PACKAGE.parent / "docs" / "reference" / "checks.rst").read_text()
    documented = set(re.findall(r"^``(crossfk\.[EW]\d{3})``", page, re.MULTILINE))
    assert documented == emitted
    assert len(emitted) == 21


def test_the_version_lives_in_one_place():
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'path = "crossfk/__init__.py"' in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", crossfk.__version__)


def test_factories_name_the_extra_when_factory_boy_is_missing(monkeypatch):
    for name in ("factory", "factory.django", "crossfk.factories"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "crossfk.factories")
    with pytest.raises(ImportError, match=r"pip install 'crossfk\[factories\]'"):
        importlib.import_module("crossfk.factories")


def noxfile_constant(name: str):
    """The literal value of ``name`` in noxfile.py, read without nox."""
    tree = ast.parse((PACKAGE.parent / "noxfile.py").read_text())
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [target.id for target in node.targets if isinstance(target, ast.Name)]
        == [name]
    ]
    return ast.literal_eval(value)


def version(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split(".")))


def test_the_classifiers_name_what_the_matrix_tests():
    django_pythons = noxfile_constant("DJANGO_PYTHONS")
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()

    assert set(django_pythons) == set(
        re.findall(r'"Framework :: Django :: ([\d.]+)"', pyproject)
    )
    assert set().union(*django_pythons.values()) == set(
        re.findall(r'"Programming Language :: Python :: (3\.\d+)"', pyproject)
    )
    # The dependency is capped above the newest Django the matrix tests.
    oldest, *_, newest = sorted(django_pythons, key=version)
    major, minor = version(newest)
    assert f'["Django>={oldest},<{major}.{minor + 1}"]' in pyproject
    assert f'requires-python = ">={min(django_pythons[oldest], key=version)}"' in (
        pyproject
    )
