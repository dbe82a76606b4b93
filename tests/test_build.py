"""The installed build: which backends exist, and that the extension is really there."""
import os
import subprocess
import sys

import torch

import lcnet_fast
from lcnet_fast.ops import _backend

BACKENDS = ("cpp", "cuda", "triton", "torch")


def test_build_info_keys():
    info = lcnet_fast.build_info()
    assert set(info) >= {"available", "reasons", "extension", "cuda_kernels_built", "torch"}
    assert set(info["available"]) == set(BACKENDS)
    assert info["available"]["torch"] is True
    for backend, ok in info["available"].items():
        if not ok:  # every unavailable backend says why
            assert isinstance(info["reasons"][backend], str) and info["reasons"][backend]
        else:
            assert backend not in info["reasons"]


def test_cpp_extension_is_built():
    """After `pip install --no-build-isolation -e .` the C++ ops must be there."""
    info = lcnet_fast.build_info()
    assert info["available"]["cpp"], info["reasons"].get("cpp")
    assert info["extension"] and os.path.dirname(info["extension"]) == os.path.dirname(
        lcnet_fast.__file__)
    assert torch._C._dispatch_has_kernel_for_dispatch_key("lcnet_fast::crop_views", "CPU")


def test_cuda_kernels_registered_iff_built():
    ext, _ = _backend.load_extension()
    built = bool(getattr(ext, "WITH_CUDA", 0))
    assert lcnet_fast.build_info()["cuda_kernels_built"] is built
    assert _backend.has_kernel("crop_views", "CUDA") is built
    if os.environ.get("LCNET_FAST_FORCE_CUDA", "0") == "1":
        # CI builds with LCNET_FAST_FORCE_CUDA=1 and runs the tests with it still set
        assert built, "LCNET_FAST_FORCE_CUDA=1 but lcnet_fast._C has no CUDA kernels"


def test_import_without_extension_falls_back_to_torch():
    """`import lcnet_fast` must work without _C; crop_views then runs the reference."""
    code = (
        "import sys; sys.modules['lcnet_fast._C'] = None\n"
        "import torch, lcnet_fast\n"
        "info = lcnet_fast.build_info()\n"
        "assert not info['available']['cpp'], info\n"
        "assert 'lcnet_fast._C not built' in info['reasons']['cpp'], info\n"
        "x = torch.randint(0, 256, (1, 6, 6, 3), dtype=torch.uint8)\n"
        "out = lcnet_fast.ops.crop_views(x, 2, 3, (0.5,) * 3, (0.25,) * 3)\n"
        "assert out.shape == (1, 5, 3, 3, 3)\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LCNET_FAST_BACKEND"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]
