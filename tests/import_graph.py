"""The import graph of lcnet_fast read from the source (ast), imports inside functions included;
shared by tests/test_package_layering.py (the package) and tests/ops/test_layering.py (the ops
layer). Not a test file: importable as `import_graph` because pytest puts tests/ (the rootdir
conftest's directory) on sys.path.

Edges: `import a.b` names a.b; `from a import b` names a.b when that is a module, else a;
importlib.import_module("...") with a constant name counts like an import statement. The parent
packages Python initialises on the way are not edges (every module sits inside lcnet_fast, whose
__init__ imports the public API, so counting them would make every lazy import a "cycle");
importing the package root explicitly (`import lcnet_fast`) is an edge to the root and counts.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(directory: Path) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(directory.rglob("*.py"))}


def is_module(dotted: str) -> bool:
    """Whether `dotted` is a module or package of the source tree or the compiled extension,
    rather than an attribute of one."""
    if dotted == "lcnet_fast._C":
        return True
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def lcnet_imports(path: Path, name: str) -> set[str]:
    """The lcnet_fast modules that `path` (module `name`) imports anywhere in its body."""
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
                found.add(sub if is_module(sub) else module)
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


def import_graph(directory: Path) -> dict[str, set[str]]:
    """module -> the lcnet_fast modules it imports, for every module under `directory`."""
    return {name: lcnet_imports(path, name) for name, path in modules_under(directory).items()}


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
