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

import json
import os
import subprocess
import sys
from pathlib import Path

from import_graph import find_cycle
from import_graph import import_graph as shared_graph

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lcnet_fast"
MAX_LINES = 450
SOURCE_SUFFIXES = (".py", ".cpp", ".h", ".cu", ".cuh")


def import_graph() -> dict[str, set[str]]:
    return shared_graph(PACKAGE)


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
