"""What this installation of lcnet_fast can run, and why not where it cannot."""
from __future__ import annotations

import torch

from lcnet_fast.ops import _backend


def build_info() -> dict:
    """Backends available here and the reason for each unavailable one.

    Returns {"available": {backend: bool}, "reasons": {backend: why unavailable},
    "extension": path of lcnet_fast._C or None, "cuda_kernels_built": bool,
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
        "cuda_kernels_built": cuda_built,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
