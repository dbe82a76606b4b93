"""The package's layering, read from the source (ast), imports inside functions included
(tests/ops/test_layering.py checks the ops layer itself the same way; this file has its own name
because pytest imports test files by basename, and two test_layering.py files would collide):

(a) no import cycle among the modules of lcnet_fast;
(b) ``import lcnet_fast`` and ``import lcnet_fast.predict`` load no training code: no
    lcnet_fast.train and no lcnet_fast.engine module (checked in a fresh interpreter);
(c) no source file in lcnet_fast/ or csrc/ is longer than MAX_LINES.

Edges as in tests/ops/test_layering.py: `import a.b` names a.b, `from a import b` names a.b when
that is a module, else a; the parent packages Python initialises on the way are not edges (every
module sits inside lcnet_fast, whose __init__ imports the public API, so counting them would make
every module part of a "cycle"). Importing the package root explicitly (`import lcnet_fast`, `from
lcnet_fast import LCNet`) is an edge to the root and does count.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lcnet_fast"
MAX_LINES = 450
SOURCE_SUFFIXES = (".py", ".cpp", ".h", ".cu", ".cuh")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_module(dotted: str, modules: dict[str, Path]) -> bool:
    """Whether `dotted` is a module of the source tree or the compiled extension (rather than an
    attribute of a module)."""
    return dotted in modules or dotted == "lcnet_fast._C"


def lcnet_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The lcnet_fast modules that `path` imports anywhere in its body (functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from . import x, from .a import x
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if is_module(sub, modules) else module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {n for n in found if n == "lcnet_fast" or n.startswith("lcnet_fast.")} - {name}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: lcnet_imports(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle among the graph's own nodes (as a path a -> ... -> a), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read():
    """The parser sees module-level, lazy (inside functions), relative and from-imports of
    submodules: a vacuous graph would pass the cycle check."""
    graph = import_graph()
    assert "lcnet_fast.engine.cli" in graph["lcnet_fast.train"]
    assert "lcnet_fast.errors" in graph["lcnet_fast.engine.cli"]
    assert "lcnet_fast.engine.distributed" in graph["lcnet_fast.engine.run"]  # from-import
    assert "lcnet_fast.config.sections" in graph["lcnet_fast.config.resolve"]
    assert "lcnet_fast.models" in graph["lcnet_fast.model_config"]  # inside build_model
    assert "lcnet_fast.data.base" in graph["lcnet_fast.data"]  # relative
    assert "lcnet_fast.inference" in graph["lcnet_fast"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "x"}}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_training_code_behind_inference():
    """What `import lcnet_fast` (the inference API) and the predict driver load, in a fresh
    interpreter: no lcnet_fast.train, no lcnet_fast.engine module."""
    script = (
        "import json, sys\n"
        "def training():\n"
        "    return sorted(m for m in sys.modules if m == 'lcnet_fast.train'\n"
        "                  or m == 'lcnet_fast.engine' or m.startswith('lcnet_fast.engine.'))\n"
        "import lcnet_fast\n"
        "after_root = training()\n"
        "import lcnet_fast.predict\n"
        "print(json.dumps({'lcnet_fast': after_root, 'lcnet_fast.predict': training()}))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {"lcnet_fast": [], "lcnet_fast.predict": []}


def test_no_source_file_over_the_line_limit():
    sources = [
        p
        for top in (PACKAGE, ROOT / "csrc")
        for p in sorted(top.rglob("*"))
        if p.suffix in SOURCE_SUFFIXES and p.is_file()
    ]
    assert len(sources) > 20  # the walk found the tree
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources
        if (n := len(p.read_text(errors="replace").splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines (split them by job): {long}"
