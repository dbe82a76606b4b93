"""The CUDA crop_views kernel, run on the CPU: its real source, emulated.

csrc/cuda/crop_views_kernel.cuh (the kernel and the launcher's geometry function) is compiled
with g++ against tests/ops/cuda_emulation/cuda_shim.h, in which the threads of a block are
cooperative fibers: __syncthreads() runs every thread of the block up to the barrier before
any goes past it, in a fixed order (ascending or descending threadIdx, or a seeded shuffle).
A missing or misplaced barrier therefore gives wrong values on every run of some schedule,
instead of only by luck; blocks run one after another over the whole grid. The launch uses
the geometry the CUDA launcher computes (same function), optionally with a smaller grid z so
that each block loops over several images, as for batches over 65535.

Outputs are checked against the PyTorch reference with the tolerances of test_crop_views.py
(fp32 tiles bit for bit); the output buffer starts as NaN inside NaN guard regions, so every
element the kernel should write must be written and nothing else may be.

Needs g++ and the CUDA toolkit headers (cuda_fp16.h etc., compiled as host code), nothing
else; skipped without them, except under LCNET_FAST_FORCE_CUDA=1 (CI), where it fails.
"""
import ctypes
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_crop_views import assert_values_match_reference  # same folder (rootdir import)

from lcnet_fast.ops import crop_views_reference
from lcnet_fast.ops.crop_views import num_views

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EMU_DIR = HERE / "cuda_emulation"
KERNEL_DIR = ROOT / "csrc" / "cuda"
SOURCES = [EMU_DIR / "crop_views_emulator.cpp", EMU_DIR / "shim_selftest.cpp"]
HEADERS = ("cuda_runtime.h", "cuda_fp16.h", "cuda_bf16.h", os.path.join("crt", "host_defines.h"))

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
CUDA_ERROR_INVALID_VALUE = 1
ASCENDING, DESCENDING, SHUFFLED = 0, 1, 12345  # schedules; other values are shuffle seeds
SCHEDULES = {"ascending": ASCENDING, "descending": DESCENDING, "shuffled": SHUFFLED}
#: NaN elements before and after the output's storage: at least the output's own size, so that a
#: stray write (a wrong view, row or image index) lands in a guard and fails the test instead of
#: corrupting the heap and crashing pytest.
MIN_GUARD = 4096


def _nvcc_include_dirs(nvcc):
    """The include directories nvcc itself passes to its host compiler (follows wrappers)."""
    try:
        dry = subprocess.run([nvcc, "--dryrun", "-c", "x.cu", "-o", "x.o"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    dirs = []
    for line in (dry.stdout + dry.stderr).splitlines():
        if re.match(r"#\$ (SYSTEM_)?INCLUDES=", line):
            dirs += [os.path.normpath(d) for d in re.findall(r'(/[^"\s]+)', line)]
    return dirs


def find_cuda_include():
    """The toolkit include dir with host-compilable cuda_fp16.h & co, or None. Same places as
    setup.py (CUDA_HOME / CUDA_PATH, /usr/local/cuda, the nvcc on PATH)."""
    cands = [os.path.join(os.environ[v], "include") for v in ("CUDA_HOME", "CUDA_PATH")
             if os.environ.get(v)]
    cands.append("/usr/local/cuda/include")
    nvcc = shutil.which("nvcc")
    if nvcc:
        cands += _nvcc_include_dirs(nvcc)
        cands.append(os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))),
                                  "include"))
    for inc in cands:
        if all(os.path.isfile(os.path.join(inc, h)) for h in HEADERS):
            return inc
    return None


def _missing_tools():
    if not sys.platform.startswith("linux"):
        return "the fiber emulator uses glibc's ucontext (Linux only)"
    if not (os.environ.get("CXX") or shutil.which("g++")):
        return "no g++ on PATH (and CXX unset)"
    if find_cuda_include() is None:
        return ("no CUDA toolkit headers (cuda_fp16.h, crt/host_defines.h) in CUDA_HOME, "
                "CUDA_PATH, /usr/local/cuda or next to nvcc")
    return None


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    missing = _missing_tools()
    if missing:
        if os.environ.get("LCNET_FAST_FORCE_CUDA", "0") == "1":
            pytest.fail(f"LCNET_FAST_FORCE_CUDA=1 but cannot emulate the CUDA kernel: {missing}")
        pytest.skip(missing)
    inc = find_cuda_include()
    so = tmp_path_factory.mktemp("cuda_emulation") / "crop_views_emulator.so"
    cxx = shlex.split(os.environ["CXX"]) if os.environ.get("CXX") else [shutil.which("g++")]
    cmd = cxx + ["-std=c++17", "-O1", "-fPIC", "-shared", f"-I{KERNEL_DIR}", f"-I{EMU_DIR}",
                 f"-I{inc}"]
    if os.path.isdir(os.path.join(inc, "cccl")):
        cmd.append(f"-isystem{os.path.join(inc, 'cccl')}")
    cmd += [str(s) for s in SOURCES] + ["-o", str(so)]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, f"{' '.join(cmd)}\n{build.stderr[-6000:]}"
    lib = ctypes.CDLL(str(so))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.crop_views_emulator_geometry.argtypes = [i64, i64, i64, p]
    lib.crop_views_emulator_run.argtypes = [p, p, p, p, i64, i64, i64, p, p, ctypes.c_int, i64,
                                            ctypes.c_longlong]
    lib.crop_views_emulator_last_error.restype = ctypes.c_char_p
    lib.shim_selftest_pair_sums.argtypes = [p, ctypes.c_uint, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_longlong]
    lib.shim_selftest_early_exit.argtypes = [p, ctypes.c_uint]
    return lib


def _i64(values):
    return (ctypes.c_int64 * len(values))(*values)


def geometry(lib, batch, level, size):
    """(P, threads, grid x, grid y, grid z, shared bytes) of the CUDA launch, or an error code."""
    info = (ctypes.c_int64 * 6)()
    rc = lib.crop_views_emulator_geometry(batch, level, size, info)
    return tuple(info) if rc == 0 else rc


def make_images(b, level, size, seed=0, layout="contiguous"):
    g = torch.Generator().manual_seed(seed + 1000 * level + size)
    n = level * size
    if layout == "contiguous":
        return torch.randint(0, 256, (b, n, n, 3), dtype=torch.uint8, generator=g)
    if layout == "sliced":  # a padded batch, every second image: every stride unusual
        big = torch.randint(0, 256, (2 * b, n + 5, n + 5, 4), dtype=torch.uint8, generator=g)
        return big[::2, 1:n + 1, 3:n + 3, :3]
    if layout == "planar":  # (B, 3, H, W) storage seen as (B, H, W, 3)
        return torch.randint(0, 256, (b, 3, n, n), dtype=torch.uint8,
                             generator=g).permute(0, 2, 3, 1)
    if layout == "broadcast":  # one image, batch stride 0
        return torch.randint(0, 256, (1, n, n, 3), dtype=torch.uint8,
                             generator=g).expand(b, n, n, 3)
    raise ValueError(layout)


OUT_LAYOUTS = {  # storage shape from (B, V, S), and the (B, V, 3, S, S) view of it
    "contiguous": (lambda b, v, s: (b, v, 3, s, s), lambda t, s: t),
    "channels_last": (lambda b, v, s: (b, v, s, s, 3), lambda t, s: t.permute(0, 1, 4, 2, 3)),
    "padded": (lambda b, v, s: (b, v + 1, 3, s + 1, s + 2),
               lambda t, s: t[:, 1:, :, :s, 1:s + 1]),
}


def emulate(lib, images, level, size, out_dtype=torch.float32, out_layout="contiguous",
            grid_z=0, schedule=ASCENDING, mean=MEAN, std=STD):
    """Runs the kernel; checks that it wrote exactly the output's elements; returns the output."""
    b = images.shape[0]
    storage_shape, as_view = OUT_LAYOUTS[out_layout]
    shape = storage_shape(b, num_views(level), size)
    n = torch.Size(shape).numel()
    guard = max(MIN_GUARD, n)
    core = torch.full((n + 2 * guard,), float("nan"), dtype=out_dtype)
    out = as_view(core[guard:guard + n].view(shape), size)
    expected = torch.zeros(core.shape, dtype=torch.bool)
    as_view(expected[guard:guard + n].view(shape), size).fill_(True)
    mean_t = torch.tensor(mean, dtype=torch.float32)
    std_t = torch.tensor(std, dtype=torch.float32)
    rc = lib.crop_views_emulator_run(
        images.data_ptr(), out.data_ptr(), mean_t.data_ptr(), std_t.data_ptr(), b, level, size,
        _i64(images.stride()), _i64(out.stride()), DTYPE_CODE[out_dtype], grid_z, schedule)
    assert rc == 0, (rc, lib.crop_views_emulator_last_error().decode())
    written = ~core.isnan()
    missing = (expected & ~written).nonzero().flatten()
    stray = (written & ~expected).nonzero().flatten()
    assert missing.numel() == 0, f"{missing.numel()} output elements never written"
    assert stray.numel() == 0, (f"{stray.numel()} writes outside the output, at storage "
                                f"offsets {(stray[:8] - guard).tolist()}")
    return out


def check_against_reference(out, images, level, size, out_dtype=torch.float32, mean=MEAN,
                            std=STD):
    """test_crop_views' tolerance, on values (out's layout is the emulator's)."""
    assert_values_match_reference(out, images, level, size, out_dtype, torch.tensor(mean),
                                  torch.tensor(std))


# --- launch geometry ---------------------------------------------------------------------------

def test_launch_geometry(lib):
    """The launcher's own function: P = 256 // level clamped to [1, size] thumbnail pixels per
    block, level * P threads, grid (ceil(S / P), S, min(B, 65535)), uint32 (threads, 3) shared."""
    for batch in (1, 5, 65535, 70000):
        for level in (1, 2, 3, 4, 17, 255, 256, 257, 300, 1024):
            for size in (1, 2, 7, 15, 16, 33, 65, 256, 300, 65535):
                p, threads, gx, gy, gz, shmem = geometry(lib, batch, level, size)
                assert p == max(1, min(256 // level, size)), (level, size, p)
                assert threads == level * p
                assert threads <= 256 or p == 1
                assert (gx - 1) * p < size <= gx * p  # every thumbnail column, no empty block
                assert (gy, gz) == (size, min(batch, 65535))
                assert shmem == threads * 3 * 4
    assert geometry(lib, 1, 17, 16)[:3] == (15, 255, 2)
    assert geometry(lib, 1, 1025, 1) == CUDA_ERROR_INVALID_VALUE  # 1025 threads
    assert geometry(lib, 1, 1, 65536) == CUDA_ERROR_INVALID_VALUE  # grid y over 65535


def test_rejected_launch_and_empty_batch(lib):
    """The emulator returns what the launcher returns, before touching any pointer."""
    s = _i64([0] * 5)
    assert lib.crop_views_emulator_run(None, None, None, None, 1, 1025, 1, s, s, 0, 0,
                                       0) == CUDA_ERROR_INVALID_VALUE
    assert lib.crop_views_emulator_run(None, None, None, None, 0, 2, 3, s, s, 0, 0, 0) == 0
    assert lib.crop_views_emulator_run(None, None, None, None, 1, 2, 3, s, s, 7, 0,
                                       0) == CUDA_ERROR_INVALID_VALUE  # unknown dtype code


# --- the emulator itself -----------------------------------------------------------------------

def _pair_sums(lib, threads, iterations, barriers, schedule):
    out = torch.zeros(iterations, threads // 2, dtype=torch.int32)
    rc = lib.shim_selftest_pair_sums(out.data_ptr(), threads, iterations, barriers, schedule)
    assert rc == 0, lib.crop_views_emulator_last_error().decode()
    it = torch.arange(iterations).view(-1, 1)
    t = torch.arange(threads // 2).view(1, -1)
    return torch.equal(out, 2000 * it + 4 * t + 1)


def test_emulator_makes_barrier_bugs_deterministic(lib):
    """A kernel with both barriers is right under every schedule; without the first, the
    ascending schedule reads values not yet stored; without the second, the descending one
    overwrites values not yet read (ascending cannot see that one: both are needed)."""
    for schedule in SCHEDULES.values():
        assert _pair_sums(lib, 64, 3, 0b11, schedule)
    assert not _pair_sums(lib, 64, 3, 0b10, ASCENDING)
    assert not _pair_sums(lib, 64, 3, 0b01, DESCENDING)
    assert _pair_sums(lib, 64, 3, 0b01, ASCENDING)


def test_emulator_reports_barrier_divergence(lib):
    out = torch.zeros(32, dtype=torch.int32)
    assert lib.shim_selftest_early_exit(out.data_ptr(), 32) == -1
    assert "barrier divergence" in lib.crop_views_emulator_last_error().decode()


# --- the kernel against the reference ----------------------------------------------------------

# (batch, level, size, grid z override); P = min(256 // level, size)
SHAPES = [
    (1, 1, 5, 0),     # level 1: the thumbnail is the image, no tiles
    (1, 1, 260, 0),   # P = 256: 2 blocks per row, the second with 4 of 256 columns
    (1, 2, 7, 0),
    (5, 3, 33, 2),    # 2 blocks in z loop over 5 images (3 + 2)
    (5, 4, 65, 2),    # P = 64: 2 blocks per row, the second 1 pixel (4 of 256 threads)
    (2, 17, 16, 1),   # P = 15, 255 threads; 1 block in z loops over both images
    (1, 300, 2, 0),   # 256 // level = 0 -> P = 1, 300 threads
]


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("b,level,size,grid_z", SHAPES)
def test_kernel_matches_reference(lib, schedule, b, level, size, grid_z):
    images = make_images(b, level, size)
    out = emulate(lib, images, level, size, grid_z=grid_z, schedule=SCHEDULES[schedule])
    check_against_reference(out, images, level, size)


@pytest.mark.parametrize("out_layout", list(OUT_LAYOUTS))
@pytest.mark.parametrize("out_dtype", list(DTYPE_CODE))
def test_dtypes_and_output_layouts(lib, out_dtype, out_layout):
    """fp16/bf16 are the fp32 values rounded once; channels-last and padded output strides."""
    b, level, size = 3, 17, 16
    images = make_images(b, level, size, layout="sliced")
    out = emulate(lib, images, level, size, out_dtype, out_layout, grid_z=2)
    check_against_reference(out, images, level, size, out_dtype)
    fp32 = emulate(lib, images, level, size, grid_z=2, schedule=DESCENDING)
    assert torch.equal(out, fp32.to(out_dtype))


@pytest.mark.parametrize("in_layout", ["sliced", "planar", "broadcast"])
def test_non_contiguous_inputs(lib, in_layout):
    b, level, size = 3, 4, 65
    images = make_images(b, level, size, layout=in_layout)
    assert not images.is_contiguous()
    out = emulate(lib, images, level, size, out_layout="channels_last", grid_z=2)
    check_against_reference(out, images, level, size)
    assert torch.equal(out, emulate(lib, images.contiguous(), level, size))


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16])
def test_low_precision_extremes(lib, out_dtype):
    """As test_cpp_low_precision_is_fp32_rounded_once: std 1e-6 overflows fp16 to inf, -3e4
    makes subnormals and flips signs; still fp32 rounded once (__float2half_rn on the host)."""
    mean, std = (0.5, 0.25, 0.0), (1e-6, -3e4, 0.3)
    images = make_images(2, 3, 7)
    fp32 = emulate(lib, images, 3, 7, mean=mean, std=std)
    ref = crop_views_reference(images, 3, 7, torch.tensor(mean), torch.tensor(std))
    assert torch.equal(fp32[:, 1:], ref[:, 1:])
    out = emulate(lib, images, 3, 7, out_dtype, mean=mean, std=std)
    assert torch.equal(out, fp32.to(out_dtype))
    if out_dtype == torch.float16:
        assert out.isinf().any()
        assert ((out.abs() < torch.finfo(torch.float16).tiny) & (out != 0)).any()
