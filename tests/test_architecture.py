"""The package's layering: no import cycle between spyolo's subpackages (function-level imports
count), the product never imports the benchmarks, the library never prints, and dataset kinds are
told apart in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

from spyolo.utils.choices import MODEL_INPUT_CHANNELS

SPYOLO = Path(__file__).resolve().parents[1] / "spyolo"

# docs/architecture.md, bottom to top: a package may import only packages listed before it.
LAYERS = ["errors", "utils", "snn", "models", "loss", "data", "events", "datasets", "config", "checkpoint", "hub",
          "inference", "stats", "eval", "export", "train", "cli"]

KINDS_MODULE = SPYOLO / "datasets" / "kinds.py"
_STRING_TESTS = {"startswith", "endswith", "removeprefix", "partition", "rpartition", "split", "rsplit", "find",
                 "index", "count"}


def _imports() -> dict[str, set[str]]:
    """subpackage (or top-level module) -> the spyolo subpackages its code imports."""
    edges: dict[str, set[str]] = {}
    for path in SPYOLO.rglob("*.py"):
        rel = path.relative_to(SPYOLO.parent).with_suffix("").parts  # ("spyolo", "train", "trainer")
        if len(rel) < 2 or rel[1] in ("__init__", "__main__"):
            continue
        pkg = rel[1]
        module = rel[:-1] if path.name == "__init__.py" else rel
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = list(module[: len(module) - node.level + (1 if path.name == "__init__.py" else 0)])
                    names = [".".join(base + ([node.module] if node.module else []))]
                else:
                    names = [node.module or ""]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "benchmarks":
                    edges.setdefault(pkg, set()).add("benchmarks")
                elif len(parts) >= 2 and parts[0] == "spyolo" and parts[1] != pkg:
                    edges.setdefault(pkg, set()).add(parts[1])
    return edges


def test_every_subpackage_has_a_layer() -> None:
    found = {p.stem if p.is_file() else p.name for p in SPYOLO.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists())
             or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))}
    assert found == set(LAYERS), found ^ set(LAYERS)


def test_imports_follow_the_layers_without_cycles() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(f"{a} -> {b}" for a, deps in _imports().items() for b in deps
                    if b not in rank or rank[b] >= rank[a])
    assert not upward, f"imports against the layering (or of the benchmarks): {upward}"


def test_the_library_does_not_print() -> None:
    printing = []
    for path in SPYOLO.rglob("*.py"):
        if "cli" in path.relative_to(SPYOLO).parts:
            continue  # the commands print their results
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{path.relative_to(SPYOLO.parent)}:{node.lineno}")
    assert not printing, printing


def test_only_the_commands_import_export() -> None:
    """spyolo.export (onnx, onnxruntime) is a deployment add-on: the library never depends on it."""
    importers = sorted(pkg for pkg, deps in _imports().items() if "export" in deps and pkg != "cli")
    assert not importers, importers


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _module_imports() -> dict[str, set[str]]:
    """module (``spyolo.inference.stream``) -> the spyolo modules its code imports at run time.

    Function-level imports count; imports under ``if TYPE_CHECKING:`` do not (they never run).
    ``from spyolo.pkg import name`` counts as importing ``spyolo.pkg.name`` when that is a module,
    else the package ``spyolo.pkg``.
    """
    modules = {}
    for path in SPYOLO.rglob("*.py"):
        parts = path.relative_to(SPYOLO.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
        modules[name] = path
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    edges[name].add(target)
    return edges


def test_no_import_cycle_between_modules() -> None:
    """No two modules import each other, directly or around a loop (inside a subpackage too).

    A package's ``__init__`` re-exporting its modules is not a loop unless one of those modules
    imports the package back.
    """
    edges = _module_imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles between modules: {cycles}"


def test_ruff_finds_nothing() -> None:
    """The lint configured in pyproject.toml ([tool.ruff]) is clean over the whole repository."""
    import shutil
    import subprocess
    import sys

    import pytest

    root = SPYOLO.parent
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        pytest.skip("ruff is not installed (it is in the dev extra)")
    done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:]


def _kind_decisions(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    """Where ``path`` tells dataset kinds apart: a string test (``.startswith("coco:")``, ``"gen1:" in s``,
    ``s == "yolo:..."``) or a constant equal to a kind's prefix, or a test of ``.input`` against a model
    input kind (``cfg.model.input == "events"``; a time constant's ``TauMode.input`` is another thing)."""
    found = []

    def kind_text(node: ast.AST) -> bool:
        values = node.elts if isinstance(node, ast.Tuple) else [node]
        return any(isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value.startswith(prefixes)
                   for v in values)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(SPYOLO.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Constant) and node.value in prefixes:
            found.append(f"{where} the prefix {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _STRING_TESTS:
            if any(kind_text(a) for a in node.args):
                found.append(f"{where} .{node.func.attr}() of a kind prefix")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(kind_text(s) for s in sides):
                found.append(f"{where} a comparison with a kind prefix")
            inputs = [s for s in sides if isinstance(s, ast.Attribute) and s.attr == "input"]
            strings = [s for s in sides if isinstance(s, ast.Constant) and s.value in MODEL_INPUT_CHANNELS]
            if inputs and strings:
                found.append(f"{where} .input compared with {strings[0].value!r}")
    return found


def test_only_the_table_of_kinds_tells_dataset_kinds_apart() -> None:
    """Config validation, dataset building, evaluation and the demo ask spyolo.datasets.kinds; no other
    module tests an entry's prefix or ``model.input`` to choose a reader."""
    from spyolo.datasets.kinds import KINDS

    prefixes = tuple(k.prefix for k in KINDS if k.prefix)
    assert set(prefixes) >= {"coco:", "yolo:", "gen1:"}
    assert _kind_decisions(KINDS_MODULE, prefixes), "the checker finds the table's own decisions"
    found = [hit for path in sorted(SPYOLO.rglob("*.py")) if path != KINDS_MODULE
             for hit in _kind_decisions(path, prefixes)]
    assert not found, found
