"""Every test checks something: an ``assert``, ``pytest.raises``/``warns``/``fail``, a
``raise AssertionError``, or a call into a helper (defined under tests/) that does one of
these. A test that only runs code passes whatever the code does."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
_PYTEST_CHECKS = frozenset({"raises", "warns", "fail", "deprecated_call"})

Function = ast.FunctionDef | ast.AsyncFunctionDef
Helper = tuple[str, ...]  # (module, function) or (module, class, method)


def _checks_directly(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Raise) and sub.exc is not None:
            exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
            if isinstance(exc, ast.Name) and exc.id == "AssertionError":
                return True
        if (isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                and isinstance(sub.func.value, ast.Name) and sub.func.value.id == "pytest"
                and sub.func.attr in _PYTEST_CHECKS):
            return True
    return False


class _Module:
    """What one module defines, and which helpers of other test modules it can name."""

    def __init__(self, name: str, tree: ast.Module, known: dict[str, str]) -> None:
        self.name = name
        self.functions: dict[str, Function] = {}
        self.methods: dict[tuple[str, str], Function] = {}
        self.names: dict[str, Helper] = {}  # local name -> (module, function or class)
        self.modules: dict[str, str] = {}  # local name -> a test module imported whole
        for top in tree.body:
            if isinstance(top, Function):
                self.functions[top.name] = top
                self.names[top.name] = (name, top.name)
            elif isinstance(top, ast.ClassDef):
                self.names[top.name] = (name, top.name)
                for member in top.body:
                    if isinstance(member, Function):
                        self.methods[(top.name, member.name)] = member
            elif isinstance(top, ast.ImportFrom) and top.module in known:
                for alias in top.names:
                    self.names[alias.asname or alias.name] = (known[top.module], alias.name)
            elif isinstance(top, ast.Import):
                for alias in top.names:
                    if alias.name in known:
                        self.modules[alias.asname or alias.name] = known[alias.name]

    def calls(self, node: ast.AST) -> Iterator[Helper | tuple[str]]:
        """The helpers a body calls: ``f()`` and ``module.f()`` resolve to one function;
        ``obj.m()`` to method ``m`` of any class this module defines or imports."""
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call):
                continue
            func = sub.func
            if isinstance(func, ast.Name) and func.id in self.names:
                yield self.names[func.id]
            elif isinstance(func, ast.Attribute):
                if isinstance(func.value, ast.Name) and func.value.id in self.modules:
                    yield (self.modules[func.value.id], func.attr)
                else:
                    yield (func.attr,)  # a method of some visible class, see _Suite


class _Suite:
    def __init__(self, sources: dict[str, str]) -> None:
        # Helper modules are imported by their bare name (pytest's pythonpath); test
        # modules share names across folders and are never imported, so key by path.
        stems: dict[str, list[str]] = {}
        for path in sources:
            stems.setdefault(Path(path).stem, []).append(path)
        known = {stem: paths[0] for stem, paths in stems.items() if len(paths) == 1}
        self.modules = {path: _Module(path, ast.parse(text, filename=path), known)
                        for path, text in sources.items()}
        self.checking: set[Helper] = set()
        for mod in self.modules.values():
            self.checking |= {(mod.name, n) for n, f in mod.functions.items()
                              if _checks_directly(f)}
            self.checking |= {(mod.name, *k) for k, f in mod.methods.items()
                              if _checks_directly(f)}
        changed = True
        while changed:  # helpers of helpers, to a fixed point
            changed = False
            for mod in self.modules.values():
                bodies: list[tuple[Helper, Function]] = [
                    *(((mod.name, n), f) for n, f in mod.functions.items()),
                    *(((mod.name, *k), f) for k, f in mod.methods.items())]
                for key, body in bodies:
                    if key not in self.checking and self.reaches(mod, body):
                        self.checking.add(key)
                        changed = True

    def reaches(self, mod: _Module, node: ast.AST) -> bool:
        classes = {ref for ref in mod.names.values() if ref[0] in self.modules
                   and ref[1] not in self.modules[ref[0]].functions}
        for call in mod.calls(node):
            if len(call) == 2 and call in self.checking:
                return True
            if len(call) == 1 and any((*cls, call[0]) in self.checking for cls in classes):
                return True
        return False


def _tests(tree: ast.Module) -> Iterator[tuple[str, Function]]:
    for top in tree.body:
        if isinstance(top, Function) and top.name.startswith("test"):
            yield top.name, top
        elif isinstance(top, ast.ClassDef) and top.name.startswith("Test"):
            for member in top.body:
                if isinstance(member, Function) and member.name.startswith("test"):
                    yield f"{top.name}.{member.name}", member


def unchecked_tests(sources: dict[str, str]) -> list[str]:
    """``path::test`` of each test in ``sources`` (path -> text) that checks nothing."""
    suite = _Suite(sources)
    bare = []
    for path in sorted(sources):
        if not Path(path).name.startswith("test_"):
            continue
        mod = suite.modules[path]
        for name, node in _tests(ast.parse(sources[path], filename=path)):
            if not (_checks_directly(node) or suite.reaches(mod, node)):
                bare.append(f"{path}::{name}")
    return bare


def test_every_test_in_the_suite_checks_something() -> None:
    sources = {str(p.relative_to(TESTS)): p.read_text() for p in sorted(TESTS.rglob("*.py"))}
    assert len(sources) > 50  # the scan found the suite
    assert unchecked_tests(sources) == []


HELPERS = """
def verify(x):
    assert x

def indirect(x):
    verify(x)

class Harness:
    def expect(self, x):
        if not x:
            raise AssertionError(x)

    def run(self):
        self.expect(1)

def quiet(x):
    return x
"""
IMPORTS = "import helpers\nfrom helpers import Harness, indirect, quiet, verify\n"


@pytest.mark.parametrize(
    ("body", "bare"),
    [
        pytest.param("def test_a():\n    assert 1\n", False, id="assert"),
        pytest.param("def test_a():\n    with pytest.raises(ValueError):\n        int('x')\n",
                     False, id="pytest-raises"),
        pytest.param("def test_a():\n    pytest.fail('no')\n", False, id="pytest-fail"),
        pytest.param("async def test_a():\n    verify(1)\n", False, id="helper"),
        pytest.param("def test_a():\n    helpers.verify(1)\n", False, id="helper-via-module"),
        pytest.param("def test_a():\n    indirect(1)\n", False, id="helper-of-helper"),
        pytest.param("def test_a():\n    Harness().expect(1)\n", False,
                     id="method-raising-assertion"),
        pytest.param("def test_a(h):\n    h.run()\n", False, id="method-via-method"),
        pytest.param("def local(x):\n    assert x\ndef test_a():\n    local(1)\n", False,
                     id="local-helper"),
        pytest.param("class TestX:\n    def test_a(self):\n        assert 1\n", False,
                     id="class-method"),
        pytest.param("def test_a():\n    quiet(1)\n", True, id="helper-that-checks-nothing"),
        pytest.param("def test_a():\n    x = 1\n", True, id="no-check"),
        pytest.param("async def test_a():\n    await run()\n", True, id="async-no-check"),
        pytest.param("def test_a():\n    asyncio.wait_for(1)\n", True,
                     id="method-of-no-visible-class"),
        pytest.param("def test_a():\n    verify.__name__\n", True, id="mention-is-not-a-call"),
        pytest.param("class TestX:\n    def test_a(self):\n        pass\n", True,
                     id="class-method-no-check"),
        pytest.param("def helper_test():\n    pass\n", False, id="not-a-test"),
    ],
)
def test_checker(body: str, bare: bool) -> None:
    found = unchecked_tests({"helpers.py": HELPERS, "test_x.py": IMPORTS + body})
    assert bool(found) == bare, found
    if bare:
        assert len(found) == 1 and found[0].startswith("test_x.py::")
        assert found[0].endswith("test_a")


def test_checker_does_not_resolve_unimported_names() -> None:
    found = unchecked_tests({"helpers.py": HELPERS, "test_x.py": "def test_a():\n    verify(1)\n"})
    assert found == ["test_x.py::test_a"]
