"""The documentation's examples refer to what exists: every import in the README's and docs'
Python blocks and in the package's docstrings resolves (the examples are not run: they train
or read files)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def _imports_of(code: str) -> list[ast.stmt]:
    """The import statements of ``code``: of the whole if it parses, else of each line that does."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        found = []
        for line in code.splitlines():
            try:
                found += ast.parse(line.strip()).body
            except SyntaxError:
                continue
        return [s for s in found if isinstance(s, (ast.Import, ast.ImportFrom))]
    return [s for s in ast.walk(tree) if isinstance(s, (ast.Import, ast.ImportFrom))]


def _docstring_examples() -> list[tuple[str, str]]:
    """(where, import line) for every line of a docstring in spyolo/ that is an import statement."""
    found = []
    for path in sorted((REPO / "spyolo").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, kinds))]
        for node in nodes:
            doc = ast.get_docstring(node)
            for line in (doc or "").splitlines():
                text = line.strip().removeprefix(">>> ")
                if re.match(r"(from \S+ import \S|import \S)", text):
                    try:
                        ast.parse(text)
                    except SyntaxError:
                        continue  # prose that starts like an import
                    found.append((f"{path.relative_to(REPO)}:{getattr(node, 'name', 'module')}", text))
    return found


def _cases() -> list[tuple[str, str]]:
    cases = []
    for doc in DOCS:
        for i, block in enumerate(_BLOCK.findall(doc.read_text(encoding="utf-8"))):
            cases += [(f"{doc.relative_to(REPO)} block {i + 1}", ast.unparse(s)) for s in _imports_of(block)]
    return cases + _docstring_examples()


def _check(statement: str) -> None:
    for node in ast.parse(statement).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, statement
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):  # a submodule not imported by its package
                    importlib.import_module(f"{node.module}.{alias.name}")


CASES = _cases()


def test_the_docs_have_examples() -> None:
    assert any(where.startswith("README.md") for where, _ in CASES)
    assert any(where.startswith("spyolo/") for where, _ in CASES)


@pytest.mark.parametrize("where, statement", CASES, ids=[f"{w}: {s}" for w, s in CASES])
def test_every_documented_import_resolves(where: str, statement: str) -> None:
    try:
        _check(statement)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{where}: {statement!r} does not resolve: {exc}")
