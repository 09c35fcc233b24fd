"""The documentation refers to what exists: every import in the README's and docs' Python blocks and
in the package's docstrings resolves (the examples are not run: they train or read files), every
link and every repository path they quote exists, every config key they name is a key of the config,
every ``spyolo`` subcommand they show is one, and the README stays a guide (at most 300 lines)."""

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


# ------------------------------------------------------------------ links, paths, keys, commands

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"(?<![\w./-])((?:docs|configs|spyolo|tests|tools|benchmarks|weights)/[\w./-]*"
                   r"\.(?:md|py|yaml|png|jpg|json))")
_KEY = re.compile(r"(?<![\w./-])(data|model|train|eval)\.([a-z][a-z0-9_]*)")
_COMMAND = re.compile(r"(?:^|[\s/`(])(?<!from )spyolo ([a-z][a-z_]*)")
_NOT_KEYS = {"py", "md", "yaml", "json", "onnx", "pt"}  # file names such as eval.py, model.onnx
_MISTYPED = {"train.epoch"}  # configuration.md's example of the error a mistyped key gives


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _code(text: str) -> list[str]:
    """The fenced blocks and inline code spans of a markdown text."""
    fences = _FENCE.findall(text)
    rest = _FENCE.sub("", text)
    return fences + _INLINE.findall(rest)


def _doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_link_resolves(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked (no network)
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{_doc_id(doc)}: links that do not resolve: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_quoted_repository_path_exists(doc: Path) -> None:
    quoted = {p for span in _code(doc.read_text(encoding="utf-8")) for p in _PATH.findall(span)}
    missing = sorted(p for p in quoted if "*" not in p and not (REPO / p).exists())
    assert not missing, f"{_doc_id(doc)}: quoted paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_named_config_key_exists(doc: Path) -> None:
    from spyolo.config import Config

    cfg = Config()
    unknown = sorted({f"{section}.{key}" for span in _code(doc.read_text(encoding="utf-8"))
                      for section, key in _KEY.findall(span)
                      if key not in _NOT_KEYS and f"{section}.{key}" not in _MISTYPED
                      and not hasattr(getattr(cfg, section), key)})
    assert not unknown, f"{_doc_id(doc)}: config keys that do not exist: {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_shown_subcommand_exists(doc: Path) -> None:
    from spyolo.cli import COMMANDS

    shown = {c for span in _code(doc.read_text(encoding="utf-8")) for c in _COMMAND.findall(span)}
    assert shown <= set(COMMANDS), f"{_doc_id(doc)}: not spyolo subcommands: {sorted(shown - set(COMMANDS))}"


def test_the_readme_is_a_guide_and_links_its_references() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    for ref in ("configuration.md", "failures.md", "recipe.md", "pretrained.md", "results.md", "evaluation.md",
                "export.md", "architecture.md"):
        assert f"(docs/{ref})" in text, ref
