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
    """After `pip install --no-build-isolation -e .` the C++ ops must be there.

    A pure-PyTorch install (LCNET_FAST_NO_EXTENSION=1) is legitimate, so a missing extension
    skips this test, with the reason, unless LCNET_FAST_REQUIRE_EXTENSION=1 (CI sets it, .ci/run):
    then it fails, so a build that silently produced no extension cannot give a green suite."""
    ext, reason = _backend.load_extension()
    if ext is None:
        if _backend.env_flag("LCNET_FAST_REQUIRE_EXTENSION"):
            pytest.fail(f"LCNET_FAST_REQUIRE_EXTENSION=1 but the C++ extension is not loaded: "
                        f"{reason}")
        pytest.skip(f"no C++ extension (set LCNET_FAST_REQUIRE_EXTENSION=1 to fail): {reason}")
    info = lcnet_fast.build_info()
    assert info["available"]["cpp"], info["reasons"].get("cpp")
    assert info["extension_reason"] is None
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


def _run_python(code: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_import_without_extension_falls_back_to_torch(tmp_path):
    """`import lcnet_fast` must work without _C (a copy of the package without the built
    lcnet_fast/_C*.so, imported first, from the current directory): build_info() and a forced
    cpp backend then say in one line that lcnet_fast._C is not built/importable, with the
    ImportError and how to build it (not "cannot import name '_C' ... circular import", which
    `from lcnet_fast import _C` says during the package's own import); crop_views runs the
    reference."""
    import shutil

    shutil.copytree(os.path.dirname(lcnet_fast.__file__), tmp_path / "lcnet_fast",
                    ignore=shutil.ignore_patterns("_C*.so", "_C*.pyd", "__pycache__"))
    code = (
        # an editable install's finder would still map lcnet_fast._C to the checkout's build
        "import sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "                    if not getattr(f, '__module__', '').startswith('__editable__')]\n"
        "import os, torch, lcnet_fast\n"
        "assert lcnet_fast.__file__.startswith(os.getcwd()), lcnet_fast.__file__\n"
        "from lcnet_fast.ops import _backend\n"
        "info = lcnet_fast.build_info()\n"
        "assert not info['available']['cpp'] and info['extension'] is None, info\n"
        "why = info['extension_reason']\n"
        "assert why == info['reasons']['cpp'] == info['reasons']['cuda'], info\n"
        "assert 'lcnet_fast._C not built/importable' in why and 'No module named' in why, why\n"
        "assert 'pip install --no-build-isolation -e .' in why, why\n"
        "assert 'circular' not in why and '\\n' not in why, why\n"
        "assert _backend.choose_backend('crop_views', 'cpu') == 'torch'\n"
        "x = torch.randint(0, 256, (1, 6, 6, 3), dtype=torch.uint8)\n"
        "out = lcnet_fast.ops.crop_views(x, 2, 3, (0.5,) * 3, (0.25,) * 3)\n"
        "assert out.shape == (1, 5, 3, 3, 3)\n"
        "os.environ['LCNET_FAST_BACKEND'] = 'cpp'\n"
        "try:\n"
        "    lcnet_fast.ops.crop_views(x, 2, 3, (0.5,) * 3, (0.25,) * 3)\n"
        "except lcnet_fast.ops.BackendUnavailableError as e:\n"
        "    msg = str(e)\n"
        "assert msg.startswith('LCNET_FAST_BACKEND=cpp cannot run lcnet_fast::crop_views'), msg\n"
        "assert why in msg and '\\n' not in msg, msg\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("LCNET_FAST_BACKEND", "LCNET_FAST_NO_EXTENSION")}
    res = _run_python(code, env, cwd=tmp_path)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


def test_no_extension_env_var_at_run_time():
    """LCNET_FAST_NO_EXTENSION=1 at import: the built lcnet_fast._C is not loaded, build_info
    says so, every op runs its torch path (auto and a forced cpp backend says why not)."""
    code = (
        "import os, sys, torch, lcnet_fast\n"
        "from lcnet_fast.ops import _backend\n"
        "assert 'lcnet_fast._C' not in sys.modules, 'lcnet_fast._C was loaded'\n"
        "assert not hasattr(torch.ops.lcnet_fast, 'crop_views'), 'ops registered'\n"
        "info = lcnet_fast.build_info()\n"
        "why = info['extension_reason']\n"
        "assert why and 'disabled by LCNET_FAST_NO_EXTENSION=1' in why, info\n"
        "assert info['extension'] is None and not info['cuda_kernels_built'], info\n"
        "assert not info['available']['cpp'] and info['reasons']['cpp'] == why, info\n"
        "for op in ('crop_views', 'dropout_add_layer_norm', 'cross_attention'):\n"
        "    assert _backend.choose_backend(op, 'cpu') == 'torch', op\n"
        "img = torch.randint(0, 256, (1, 6, 6, 3), dtype=torch.uint8)\n"
        "m, s = torch.tensor([0.5] * 3), torch.tensor([0.25] * 3)\n"
        "out = lcnet_fast.ops.crop_views(img, 2, 3, m, s)\n"
        "assert torch.equal(out, lcnet_fast.ops.crop_views_reference(img, 2, 3, m, s))\n"
        "x, w = torch.randn(2, 8), torch.ones(8)\n"
        "out = lcnet_fast.ops.dropout_add_layer_norm(x, x, w, 0 * w, 0.0)\n"
        "ref = lcnet_fast.ops.dropout_add_layer_norm_reference(x, x, w, 0 * w)\n"
        "assert torch.equal(out, ref)\n"
        "os.environ['LCNET_FAST_BACKEND'] = 'cpp'\n"
        "try:\n"
        "    lcnet_fast.ops.dropout_add_layer_norm(x, x, w, 0 * w, 0.0)\n"
        "except lcnet_fast.ops.BackendUnavailableError as e:\n"
        "    msg = str(e)\n"
        "assert 'LCNET_FAST_BACKEND=cpp' in msg and why in msg, msg\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LCNET_FAST_BACKEND"}
    env["LCNET_FAST_NO_EXTENSION"] = "1"
    res = _run_python(code, env)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-3000:]


def test_build_problems():
    """What .ci/run's check reports: missing extension, missing CUDA kernels; nothing if fine."""
    from lcnet_fast._build_info import build_problems

    ok = {"extension": "/x/_C.so", "extension_reason": None, "cuda_kernels_built": True,
          "available": {"cpp": True}, "reasons": {}}
    assert build_problems(ok, True, True) == []
    missing = dict(ok, extension=None, extension_reason="lcnet_fast._C not built/importable (X)",
                   cuda_kernels_built=False, available={"cpp": False},
                   reasons={"cpp": "lcnet_fast._C not built/importable (X)"})
    (line,) = build_problems(missing, True, True)
    assert "not loaded" in line and "not built/importable (X)" in line
    assert build_problems(missing, False, False) == []
    (line,) = build_problems(dict(ok, cuda_kernels_built=False), True, True)
    assert "cuda_kernels_built is False" in line
    assert build_problems(dict(ok, cuda_kernels_built=False), True, False) == []


def test_ci_run_checks_the_build(monkeypatch, capsys):
    """.ci/run runs the README's commands, requires the extension in pytest, and its check line
    exits non-zero, with the reason, when the extension is missing (executed here in-process
    with the extension's loader faked; exit 0 with a real CUDA build is CI's own run)."""
    import shlex
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text().splitlines()
    for cmd in ("python -m pip install -r requirements.txt",
                "python -m pip install --no-build-isolation -e .", "pytest"):
        assert cmd in lines, cmd
    assert "export LCNET_FAST_REQUIRE_EXTENSION=1" in lines
    assert "export LCNET_FAST_FORCE_CUDA=1" in lines
    (check,) = [line for line in lines if line.startswith("python -c ")]
    assert lines.index(check) == lines.index("pytest") - 1
    code = shlex.split(check)[2]
    monkeypatch.setattr(_backend, "load_extension",
                        lambda: (None, "lcnet_fast._C not built/importable (faked)"))
    with pytest.raises(SystemExit) as info:
        exec(code, {})
    assert info.value.code == 1
    assert "build check FAILED" in capsys.readouterr().err


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
