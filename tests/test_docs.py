"""Every file path the docs name exists: backticked repository paths and markdown links/images."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", "EXPERIMENTS.md", "BENCHMARKS.md")
TOP_DIRS = ("lcnet_fast/", "tests/", "benchmarks/", "docs/", "csrc/", "python/", ".ci/")
BACKTICKED = re.compile(r"`([^`\s]+)`")
LINKED = re.compile(r"\]\(([^)\s#]+)\)")


def named_paths(text: str) -> list[str]:
    """Repository paths a document names: `dir/...` in backticks (no placeholders such as <op>
    or globs) and relative markdown link targets."""
    found = []
    for token in BACKTICKED.findall(text):
        token = token.split("::")[0].rstrip(".,:;)")
        if token.startswith(TOP_DIRS) and not any(c in token for c in "<>*{}$"):
            found.append(token)
    for target in LINKED.findall(text):
        if "://" not in target:
            found.append(target)
    return found


def test_the_scanner_finds_paths():
    text = "see `lcnet_fast/train.py::main`, `tests/<op>.py` and ![plot](docs/x.png)"
    assert named_paths(text) == ["lcnet_fast/train.py", "docs/x.png"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_named_path_exists(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as handle:
        text = handle.read()
    missing = sorted({p for p in named_paths(text) if not os.path.exists(os.path.join(ROOT, p))})
    assert not missing, f"{doc} names paths that do not exist: {missing}"
