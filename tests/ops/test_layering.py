"""The import layering of lcnet_fast/ops, read from the source (ast), imports inside functions
included: the ops are the lowest layer, one module per op over the Triton kernels.

(a) no import cycle among the lcnet_fast.ops modules;
(b) no module in lcnet_fast/ops/triton imports an op module lcnet_fast.ops.<op> (or the package
    lcnet_fast.ops, which imports them all): kernels and launchers know no public function;
    what both need sits in a leaf (lcnet_fast/ops/_shapes.py);
(c) outside lcnet_fast.ops, modules under lcnet_fast/ops import only the leaves listed in
    ALLOWED_OUTSIDE: never lcnet_fast.models, engine, data, train, ... nor the package root
    `lcnet_fast` itself (its __init__ imports the models and everything else).

Each `import a.b` or `from a import b` counts as an edge to the module it names (`from a import
b`: to a.b when that is a module, else to a), not to the parent packages Python also
initialises: every module under lcnet_fast/ops is inside the package lcnet_fast.ops, so those
implicit edges would make every lazy import a "cycle". importlib.import_module("...") with a
constant name counts like an import statement.
"""

from pathlib import Path

from import_graph import find_cycle, lcnet_imports, modules_under
from import_graph import import_graph as shared_graph

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "lcnet_fast" / "ops"
#: lcnet_fast modules outside lcnet_fast.ops that an ops module may import: the compiled
#: extension (lcnet_fast/ops/_backend.py loads it) and the user-facing error types (a leaf).
ALLOWED_OUTSIDE = {"lcnet_fast._C", "lcnet_fast.errors"}


def ops_modules() -> dict[str, Path]:
    return modules_under(OPS)


def import_graph() -> dict[str, set[str]]:
    return shared_graph(OPS)


def test_the_graph_is_read():
    """The parser sees what is there: lazy imports inside functions, from-imports of
    submodules and importlib calls (a vacuous graph would pass every check below)."""
    graph = import_graph()
    assert "lcnet_fast.ops._backend" in graph["lcnet_fast.ops.cross_attention"]
    assert "lcnet_fast.ops._shapes" in graph["lcnet_fast.ops.cross_attention"]
    # the lazy import of the kernels, inside the Triton op's body
    assert "lcnet_fast.ops.triton.cross_attention" in graph["lcnet_fast.ops.cross_attention"]
    assert "lcnet_fast.ops.triton.crop_views" in graph["lcnet_fast.ops.crop_views"]
    assert "lcnet_fast._C" in graph["lcnet_fast.ops._backend"]  # importlib.import_module
    assert "lcnet_fast.ops.crop_views" in graph["lcnet_fast.ops"]


def test_imports_are_resolved(tmp_path):
    """Forms the checks must see: inside functions, relative, attributes vs modules."""
    source = tmp_path / "mod.py"
    source.write_text(
        "import torch\n"
        "from . import _shapes\n"
        "from ._backend import choose_backend\n"
        "def f():\n"
        "    import lcnet_fast\n"
        "    from lcnet_fast import errors, build_info\n"
        "    from lcnet_fast.models import LCNet\n"
        "    from .triton import crop_views\n"
    )
    assert lcnet_imports(source, "lcnet_fast.ops.mod") == {
        "lcnet_fast",  # the root, and build_info is an attribute of it
        "lcnet_fast.errors",
        "lcnet_fast.models",
        "lcnet_fast.ops._shapes",
        "lcnet_fast.ops._backend",
        "lcnet_fast.ops.triton.crop_views",
    }


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "x"}}) is None


def test_no_cycle_in_ops():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_triton_modules_import_no_op_module():
    graph = import_graph()
    op_modules = {
        n for n, p in ops_modules().items() if p.parent == OPS and not p.name.startswith("_")
    }
    assert op_modules == {
        f"lcnet_fast.ops.{op}" for op in ("crop_views", "cross_attention", "dropout_add_layer_norm")
    }
    bad = {
        name: sorted(deps & (op_modules | {"lcnet_fast.ops"}))
        for name, deps in graph.items()
        if name.startswith("lcnet_fast.ops.triton.")
    }
    bad = {name: deps for name, deps in bad.items() if deps}
    assert not bad, f"Triton modules importing the public op modules: {bad}"


def test_ops_import_nothing_above_them():
    graph = import_graph()
    bad = {
        name: sorted(
            d for d in deps if not d.startswith("lcnet_fast.ops") and d not in ALLOWED_OUTSIDE
        )
        for name, deps in graph.items()
    }
    bad = {name: deps for name, deps in bad.items() if deps}
    assert not bad, f"lcnet_fast/ops importing outside the ops layer: {bad}"
