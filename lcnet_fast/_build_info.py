"""What this installation of lcnet_fast can run, and why not where it cannot.

`main(argv)` prints build_info() as JSON; with --require-extension (and
--require-cuda-kernels) it returns 1 after a one-line message on stderr when lcnet_fast._C is
not loaded (or has no CUDA kernels). CI runs it after its install (.ci/run):
    python -c "import sys, lcnet_fast._build_info as b; sys.exit(b.main([...]))"
so a build that did not produce what was asked for cannot pass unnoticed. (Not a
`python -m` entry point: the package imports this module, and runpy warns about that.)
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from lcnet_fast.ops import _backend


def build_info() -> dict:
    """Backends available here and the reason for each unavailable one.

    Returns {"available": {backend: bool}, "reasons": {backend: why unavailable},
    "extension": path of lcnet_fast._C or None, "extension_reason": None if lcnet_fast._C is
    loaded, else one line saying why not (not built/importable with the ImportError text and
    how to build it, or disabled by LCNET_FAST_NO_EXTENSION), "cuda_kernels_built": bool,
    "torch": torch version, "torch_cuda": CUDA version of torch or None}.
    Never raises: this is what to print when something does not run.
    """
    ext, ext_reason = _backend.load_extension()
    reasons: dict[str, str] = {}
    if ext_reason:
        reasons["cpp"] = ext_reason
    elif not _backend.has_kernel("crop_views", "CPU"):
        reasons["cpp"] = "lcnet_fast._C loaded but registers no CPU kernels"
    cuda_built = bool(ext is not None and getattr(ext, "WITH_CUDA", 0))
    cuda_reason = _backend.cuda_unavailable_reason()
    if ext_reason:
        reasons["cuda"] = ext_reason
    elif not cuda_built:
        reasons["cuda"] = ("lcnet_fast._C built without CUDA kernels (no GPU at build time; "
                           "LCNET_FAST_FORCE_CUDA=1 forces them)")
    elif cuda_reason:
        reasons["cuda"] = cuda_reason
    triton_reason = _backend.triton_unavailable_reason()
    if triton_reason:
        reasons["triton"] = triton_reason
    elif cuda_reason and not _backend.triton_interpreter():
        reasons["triton"] = f"{cuda_reason} (TRITON_INTERPRET=1 runs Triton kernels on CPU)"
    return {
        "available": {b: b not in reasons for b in _backend.BACKENDS},
        "reasons": reasons,
        "extension": getattr(ext, "__file__", None),
        "extension_reason": ext_reason,
        "cuda_kernels_built": cuda_built,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }


def build_problems(info: dict, require_extension: bool = True,
                   require_cuda_kernels: bool = False) -> list[str]:
    """One line per requirement `info` (a build_info()) does not meet; empty if all are met."""
    problems = []
    if (require_extension or require_cuda_kernels) and not info["extension"]:
        problems.append(f"the C++ extension is not loaded: {info['extension_reason']}")
    elif require_extension and not info["available"]["cpp"]:
        problems.append(f"the C++ CPU kernels are not available: {info['reasons']['cpp']}")
    if require_cuda_kernels and info["extension"] and not info["cuda_kernels_built"]:
        problems.append("lcnet_fast._C was built without its CUDA kernels (cuda_kernels_built is "
                        "False), but they were required (LCNET_FAST_FORCE_CUDA=1 builds them "
                        "without a GPU)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lcnet_fast._build_info",
        description="Print what this lcnet_fast installation can run (build_info() as JSON).")
    parser.add_argument("--require-extension", action="store_true",
                        help="exit 1 unless lcnet_fast._C is loaded with its C++ CPU kernels")
    parser.add_argument("--require-cuda-kernels", action="store_true",
                        help="exit 1 unless lcnet_fast._C was built with its CUDA kernels")
    args = parser.parse_args(argv)
    info = build_info()
    print(json.dumps(info, indent=2, sort_keys=True))
    problems = build_problems(info, args.require_extension, args.require_cuda_kernels)
    for line in problems:
        print(f"lcnet_fast build check FAILED: {line}", file=sys.stderr)
    return 1 if problems else 0
