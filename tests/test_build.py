"""The installed build: which backends exist, and that the extension is really there."""
import os
import subprocess
import sys

import pytest
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


def test_sdist_holds_every_extension_source(tmp_path):
    """An sdist must build the extension on another machine: every file under csrc/ (headers,
    CUDA sources: setup.py names only the current configuration's .cpp/.cu) and CMakeLists.txt
    must be in it (MANIFEST.in). Built from a copy of the tracked files, so the checkout's
    egg-info is untouched."""
    import shutil
    import tarfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout (the sdist is built from the tracked files)")
    tracked = subprocess.run(["git", "ls-files"], cwd=root, check=True, capture_output=True,
                             text=True).stdout.split()
    src = tmp_path / "src"
    for name in tracked:
        if (root / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, src / name)
    env = dict(os.environ, LCNET_FAST_NO_EXTENSION="1")
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
                   cwd=src, env=env, check=True, capture_output=True)
    (archive,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {n for n in tracked if n.startswith("csrc/")} | {"CMakeLists.txt"}
    assert needed <= names, f"missing from the sdist: {sorted(needed - names)}"
