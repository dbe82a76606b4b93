"""crop_views: every available backend against the pure-PyTorch reference.

Tolerance (derived, not guessed): with ref64 = the reference computed in float64,
a backend's max error against ref64 must be <= 2 x the max error of the plain
PyTorch op chain at the same output dtype, + one fp32 ulp of the largest value.
On top of that, fp32 tiles (views 1..) must be bit-identical to the op chain: both
compute (x/255 - mean)/std with IEEE fp32 divisions in the same order.
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lcnet_fast
from lcnet_fast.ops import _backend, crop_views, crop_views_reference
from lcnet_fast.ops.crop_views import num_views

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
HAS_CUDA = torch.cuda.is_available()
INFO = lcnet_fast.build_info()


def backends_for(device_type):
    return [
        b
        for b in _backend.BACKENDS
        if _backend.unavailable_reason(b, "crop_views", device_type) is None
    ]


CPU_BACKENDS = backends_for("cpu")
CPU_NATIVE = [b for b in CPU_BACKENDS if b != "triton"]  # triton on CPU = slow interpreter
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")


def make_images(b, level, size, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed + 1000 * level + size)
    n = level * size
    return torch.randint(0, 256, (b, n, n, 3), dtype=torch.uint8, generator=g).to(device)


def stats(device):
    return torch.tensor(MEAN, device=device), torch.tensor(STD, device=device)


def assert_values_match_reference(out, images, level, size, out_dtype, mean, std):
    """The module doc's tolerance, on values only (any layout). mean, std: (3,) tensors on
    images' device. Also used by test_crop_views_cuda_emulated.py."""
    torch_out = crop_views_reference(images, level, size, mean, std, out_dtype)
    ref64 = crop_views_reference(
        images, level, size, mean, std, torch.float64, compute_dtype=torch.float64
    )
    if out.numel() == 0:
        return
    fast_err = (out.double() - ref64).abs().max().item()
    torch_err = (torch_out.double() - ref64).abs().max().item()
    atol = torch.finfo(torch.float32).eps * ref64.abs().max().item()
    assert fast_err <= 2 * torch_err + atol, (fast_err, torch_err, atol)
    if out_dtype == torch.float32 and level > 1:
        assert torch.equal(out[:, 1:], torch_out[:, 1:]), "fp32 tiles must be bit-identical"


def check_against_reference(out, images, level, size, out_dtype=torch.float32, channels_last=False):
    mean, std = stats(images.device)
    n = images.shape[0]
    assert out.shape == (n, num_views(level), 3, size, size)
    assert out.dtype == out_dtype
    assert out.device == images.device
    assert_values_match_reference(out, images, level, size, out_dtype, mean, std)
    if out.numel() == 0:
        return
    if channels_last:
        assert out.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    else:
        assert out.is_contiguous()


@pytest.fixture
def use_backend(monkeypatch):
    def set_backend(name):
        monkeypatch.setenv(_backend.ENV_VAR, name)

    return set_backend


SHAPES = [(1, 1, 5), (2, 2, 7), (1, 3, 13), (2, 4, 7), (1, 3, 16)]


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("b,level,size", SHAPES)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cpu_backends_match_reference(use_backend, backend, b, level, size, out_dtype):
    use_backend(backend)
    images = make_images(b, level, size)
    out = crop_views(images, level, size, MEAN, STD, out_dtype=out_dtype)
    check_against_reference(out, images, level, size, out_dtype)


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_channels_last(use_backend, backend, out_dtype):
    use_backend(backend)
    images = make_images(2, 3, 7)
    out = crop_views(images, 3, 7, MEAN, STD, out_dtype=out_dtype, channels_last=True)
    check_against_reference(out, images, 3, 7, out_dtype, channels_last=True)
    plain = crop_views(images, 3, 7, MEAN, STD, out_dtype=out_dtype)
    assert torch.equal(out, plain)


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_non_contiguous_inputs(use_backend, backend):
    use_backend(backend)
    level, size = 2, 7
    n = level * size
    big = make_images(3, 1, n + 5)  # (3, n+5, n+5, 3)
    padded = torch.cat([big, big[..., :1]], dim=-1)  # (3, n+5, n+5, 4)
    sliced = padded[::2, 1 : n + 1, 3 : n + 3, :3]  # every stride unusual
    assert not sliced.is_contiguous()
    chw = make_images(2, level, size).permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    for images in (sliced, chw):
        out = crop_views(images, level, size, MEAN, STD)
        check_against_reference(out, images, level, size)
        assert torch.equal(out, crop_views(images.contiguous(), level, size, MEAN, STD))


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_tensor_stats_and_empty_batch(use_backend, backend):
    use_backend(backend)
    images = make_images(2, 2, 5)
    mean, std = stats("cpu")
    a = crop_views(images, 2, 5, mean.view(3, 1, 1), std.double(), out_dtype=torch.float32)
    b = crop_views(images, 2, 5, MEAN, STD)
    assert torch.equal(a, b)
    empty = crop_views(images[:0], 2, 5, MEAN, STD)
    assert empty.shape == (0, 5, 3, 5, 5)


def test_float_stats_become_one_cached_tensor_per_device():
    """Float mean/std are turned into a device tensor once, not on every call (a host-to-device
    copy per call on a GPU, and illegal inside CUDA-graph capture); values stay per call."""
    from lcnet_fast.ops.crop_views import _as_stats

    first = _as_stats("std", STD, torch.device("cpu"))
    assert _as_stats("std", list(STD), torch.device("cpu")) is first
    other = _as_stats("std", (0.5, 0.5, 0.5), torch.device("cpu"))
    assert other is not first and other.tolist() == [0.5, 0.5, 0.5]
    images = make_images(1, 2, 5)
    a = crop_views(images, 2, 5, MEAN, STD)
    b = crop_views(images, 2, 5, MEAN, (0.5, 0.5, 0.5))
    assert not torch.equal(a, b)
    assert torch.equal(a, crop_views(images, 2, 5, MEAN, STD))


def test_values_by_hand():
    """Level 2, size 1: a 2x2 image; view 0 its mean, views 1..4 its pixels."""
    img = torch.tensor(
        [[[[0, 10, 20], [255, 30, 40]], [[50, 60, 70], [80, 90, 100]]]], dtype=torch.uint8
    )
    out = crop_views(img, 2, 1, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).double()
    px = img.double()[0].reshape(4, 3) / 255
    torch.testing.assert_close(out[0, 1:, :, 0, 0], px, rtol=0, atol=1e-7)
    torch.testing.assert_close(out[0, 0, :, 0, 0], px.mean(0), rtol=0, atol=1e-7)


def test_auto_choice():
    os.environ.pop(_backend.ENV_VAR, None)
    expected = "cpp" if INFO["available"]["cpp"] else "torch"
    assert _backend.choose_backend("crop_views", "cpu") == expected


def test_forced_backend_that_cannot_run(use_backend):
    use_backend("cuda" if not HAS_CUDA else "cpp")
    images = make_images(1, 2, 3, device="cuda" if HAS_CUDA else "cpu")
    with pytest.raises(_backend.BackendUnavailableError, match="LCNET_FAST_BACKEND="):
        crop_views(images, 2, 3, MEAN, STD)
    use_backend("nonsense")
    with pytest.raises(ValueError, match="LCNET_FAST_BACKEND='nonsense'"):
        crop_views(images, 2, 3, MEAN, STD)


GOOD = dict(level=2, size=3)
ERRORS = [
    (dict(images=torch.zeros(1, 6, 6, 3)), TypeError, "images must be uint8"),
    (dict(images=torch.zeros(6, 6, 3, dtype=torch.uint8)), ValueError, "rank 3"),
    (dict(images=torch.zeros(1, 6, 6, 4, dtype=torch.uint8)), ValueError, "last dim must be 3"),
    (dict(images=torch.zeros(1, 6, 5, 3, dtype=torch.uint8)), ValueError, "must be square"),
    (dict(images=torch.zeros(1, 8, 8, 3, dtype=torch.uint8)), ValueError, "level \\* size"),
    (dict(level=0, size=3), ValueError, "level must be >= 1"),
    (dict(level=2, size=0), ValueError, "size must be >= 1"),
    (dict(level=2.0), TypeError, "level must be an int"),
    (dict(mean=(0.5, 0.5)), ValueError, "mean must hold 3 values"),
    (dict(std=torch.ones(4)), ValueError, "std must hold 3 values"),
    (dict(std=(1.0, 0.0, 1.0)), ValueError, "std must be non-zero"),
    (dict(std=torch.tensor([1.0, 1.0, 0.0])), ValueError, "std must be non-zero"),
    (dict(out_dtype=torch.int32), TypeError, "out_dtype must be one of"),
]


@pytest.mark.parametrize("change,exc,msg", ERRORS)
def test_bad_arguments(change, exc, msg):
    kwargs = dict(images=torch.zeros(1, 6, 6, 3, dtype=torch.uint8), mean=MEAN, std=STD, **GOOD)
    kwargs.update(change)
    with pytest.raises(exc, match=msg):
        crop_views(**kwargs)


@pytest.mark.skipif(not INFO["available"]["cpp"], reason=str(INFO["reasons"].get("cpp")))
@pytest.mark.parametrize(
    "images,level,size,msg",
    [
        (torch.zeros(1, 8, 8, 3, dtype=torch.uint8), 2, 3, "level\\*size"),
        (torch.zeros(1, 6, 6, 3, dtype=torch.int32), 2, 3, "must be uint8"),
        (torch.zeros(1, 6, 6, 3, dtype=torch.uint8), 0, 3, "level must be >= 1"),
        (torch.zeros(1, 6, 6, 2, dtype=torch.uint8), 2, 3, "last dim must be 3"),
        # thumbnail block sums (255 * level^2) are int32 in the CPU kernel; expand: no memory
        (
            torch.zeros(1, 1, 1, 3, dtype=torch.uint8).expand(1, 2902, 2902, 3),
            2902,
            1,
            "level <= 2901",
        ),
    ],
)
def test_cpp_op_checks_its_arguments(images, level, size, msg):
    """A direct torch.ops call (no Python wrapper) must fail cleanly, never read OOB."""
    mean, std = stats("cpu")
    with pytest.raises(RuntimeError, match=msg):
        torch.ops.lcnet_fast.crop_views(images, level, size, mean, std, torch.float32, False)
    with pytest.raises(RuntimeError, match="std\\[1\\] must be non-zero"):
        torch.ops.lcnet_fast.crop_views(
            torch.zeros(1, 6, 6, 3, dtype=torch.uint8),
            2,
            3,
            mean,
            torch.tensor([1.0, 0.0, 1.0]),
            torch.float32,
            False,
        )


@pytest.mark.skipif(not INFO["available"]["cpp"], reason=str(INFO["reasons"].get("cpp")))
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck_cpp(channels_last):
    mean, std = stats("cpu")
    for level, size in ((1, 3), (2, 5)):
        args = (make_images(2, level, size), level, size, mean, std, torch.float16, channels_last)
        torch.library.opcheck(torch.ops.lcnet_fast.crop_views.default, args)


# --- the C++ kernel's per-ISA builds ----------------------------------------------------------
# csrc/cpu/crop_views.cpp is compiled for the x86-64 baseline, AVX2 and AVX-512 and runs the best
# build the CPU has, capped by ATEN_CPU_CAPABILITY (PyTorch's switch; the kernel reads it on every
# call). Every build must give the same bits. Where the CPU lacks a build (or is not x86), a cap
# runs the best build there is, so these tests still pass and test what exists.

ISA_CAPS = ("default", "avx2", "avx512")
needs_cpp = pytest.mark.skipif(not INFO["available"]["cpp"], reason=str(INFO["reasons"].get("cpp")))


def cpp_op(images, level, size, mean, std, out_dtype, channels_last):
    return torch.ops.lcnet_fast.crop_views(images, level, size, mean, std, out_dtype, channels_last)


@needs_cpp
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpp_isa_builds_agree_bitwise(monkeypatch, out_dtype, channels_last):
    """Size 70 = one full 64-pixel chunk of the planar store plus a remainder; level 1 has no
    tiles; strided and batch-broadcast inputs take the copy-to-packed-row path."""
    mean, std = stats("cpu")
    for b, level, size in ((2, 3, 70), (1, 1, 67), (2, 2, 5)):
        images = make_images(b, level, size)
        chw = images.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
        broadcast = images[:1].expand_as(images)  # batch stride 0
        outs = {}
        for cap in ISA_CAPS:
            monkeypatch.setenv("ATEN_CPU_CAPABILITY", cap)
            outs[cap] = cpp_op(images, level, size, mean, std, out_dtype, channels_last)
            check_against_reference(outs[cap], images, level, size, out_dtype, channels_last)
            assert torch.equal(
                cpp_op(chw, level, size, mean, std, out_dtype, channels_last), outs[cap]
            )
            assert torch.equal(
                cpp_op(broadcast, level, size, mean, std, out_dtype, channels_last),
                cpp_op(broadcast.contiguous(), level, size, mean, std, out_dtype, channels_last),
            )
        for cap in ISA_CAPS:
            assert torch.equal(outs[cap], outs["default"]), cap


@needs_cpp
@pytest.mark.parametrize("cap", ISA_CAPS)
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpp_low_precision_is_fp32_rounded_once(monkeypatch, cap, channels_last):
    """fp16/bf16 outputs are exactly the kernel's fp32 values rounded by torch, in every build.
    The extreme std make fp16 overflow to inf (1e-6), go subnormal (3e4) and flip sign; fp32
    tiles stay bit-identical to the op chain even then (same IEEE divisions, no multiply)."""
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", cap)
    mean = torch.tensor([0.5, 0.25, 0.0])
    std = torch.tensor([1e-6, -3e4, 0.3])
    images = make_images(2, 3, 70)
    fp32 = cpp_op(images, 3, 70, mean, std, torch.float32, channels_last)
    ref = crop_views_reference(images, 3, 70, mean, std)
    assert torch.equal(fp32[:, 1:], ref[:, 1:])
    half = fp32.to(torch.float16)
    assert half.isinf().any()
    assert ((half.abs() < torch.finfo(torch.float16).tiny) & (half != 0)).any()
    for dtype in (torch.float16, torch.bfloat16):
        out = cpp_op(images, 3, 70, mean, std, dtype, channels_last)
        assert torch.equal(out, fp32.to(dtype)), dtype


def test_compile_fullgraph_no_graph_break():
    images = make_images(2, 2, 5)

    def f(x):
        return crop_views(x, 2, 5, MEAN, STD, channels_last=True).float().mean()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(images), f(images))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=st.integers(1, 3),
    level=st.integers(1, 5),
    size=st.integers(1, 11),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_against_reference(b, level, size, channels_last, seed):
    images = make_images(b, level, size, seed=seed)
    out = crop_views(images, level, size, MEAN, STD, channels_last=channels_last)
    check_against_reference(out, images, level, size, channels_last=channels_last)


# --- Triton in the CPU interpreter (TRITON_INTERPRET=1 from tests/conftest.py) --------------

needs_interp = pytest.mark.skipif(
    "triton" not in CPU_BACKENDS,
    reason=str(_backend.unavailable_reason("triton", "crop_views", "cpu")),
)


@needs_interp
@pytest.mark.parametrize(
    "b,level,size,out_dtype,channels_last",
    [
        (1, 1, 5, torch.float32, False),
        (2, 2, 7, torch.float16, True),
        (1, 3, 13, torch.float32, False),  # tiles straddle program blocks
        (1, 4, 3, torch.float32, True),
    ],
)
def test_triton_interpreter_matches_reference(
    use_backend, b, level, size, out_dtype, channels_last
):
    use_backend("triton")
    images = make_images(b, level, size)
    out = crop_views(
        images, level, size, MEAN, STD, out_dtype=out_dtype, channels_last=channels_last
    )
    check_against_reference(out, images, level, size, out_dtype, channels_last)


@needs_interp
@pytest.mark.parametrize(
    "b,level,size,channels_last",
    [
        (
            2,
            2,
            70,
            False,
        ),  # 64-column blocks: one full, one masked; 8-row blocks: 9, the last partial
        (1, 3, 9, True),
    ],
)
def test_triton_interpreter_with_gpu_block_sizes(
    use_backend, monkeypatch, b, level, size, channels_last
):
    """The GPU launch blocks (8 thumbnail rows x up to 64 columns) in the interpreter, so their
    masking is checked on every CI run, not only on a GPU machine."""
    import lcnet_fast.ops.triton.crop_views as kernels

    blocks = kernels._blocks
    monkeypatch.setattr(kernels, "_blocks", lambda size, _device: blocks(size, "cuda"))
    assert kernels._blocks(70, "cpu") == (8, 64)
    use_backend("triton")
    images = make_images(b, level, size)
    out = crop_views(images, level, size, MEAN, STD, channels_last=channels_last)
    check_against_reference(out, images, level, size, channels_last=channels_last)


@needs_interp
def test_triton_interpreter_non_contiguous_and_opcheck(use_backend):
    use_backend("triton")
    images = make_images(2, 2, 3).permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
    out = crop_views(images, 2, 3, MEAN, STD)
    check_against_reference(out, images, 2, 3)
    mean, std = stats("cpu")
    torch.library.opcheck(
        torch.ops.lcnet_fast.crop_views_triton.default,
        (images, 2, 3, mean, std, torch.float32, True),
        test_utils=("test_schema", "test_faketensor"),
    )


@needs_interp
def test_triton_interpreter_compile_fullgraph(use_backend):
    """Dynamo traces the Triton path (lazy import included) without graph breaks. backend
    "eager": AOT tracing of a triton_op runs the interpreter on fake tensors, which fails
    (interpreter-only; the GPU test compiles with inductor)."""
    use_backend("triton")
    images = make_images(1, 2, 3)
    f = torch.compile(
        lambda x: crop_views(x, 2, 3, MEAN, STD, channels_last=True) * 2,
        fullgraph=True,
        backend="eager",
    )
    check_against_reference(f(images) / 2, images, 2, 3, channels_last=True)


# --- GPU (run by benchmarks/gpu_check.sh) ----------------------------------------------------


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton", "torch"])
@pytest.mark.parametrize(
    "b,level,size", [(1, 1, 5), (2, 2, 7), (3, 3, 13), (2, 4, 33), (4, 3, 448)]
)
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gpu_backends_match_reference(
    use_backend, backend, b, level, size, out_dtype, channels_last
):
    reason = _backend.unavailable_reason(backend, "crop_views", "cuda")
    if reason:
        pytest.skip(reason)
    use_backend(backend)
    images = make_images(b, level, size, device="cuda")
    out = crop_views(
        images, level, size, MEAN, STD, out_dtype=out_dtype, channels_last=channels_last
    )
    check_against_reference(out, images, level, size, out_dtype, channels_last)
    sliced = make_images(b, level, size + 1, device="cuda")[:, : level * size, 1 : level * size + 1]
    out = crop_views(sliced, level, size, MEAN, STD, out_dtype=out_dtype)
    check_against_reference(out, sliced, level, size, out_dtype)


@gpu
@pytest.mark.gpu
def test_gpu_opcheck_and_compile():
    mean, std = stats("cuda")
    images = make_images(2, 3, 8, device="cuda")
    if INFO["available"]["cuda"]:
        torch.library.opcheck(
            torch.ops.lcnet_fast.crop_views.default, (images, 3, 8, mean, std, torch.bfloat16, True)
        )
    if INFO["available"]["triton"]:
        torch.library.opcheck(
            torch.ops.lcnet_fast.crop_views_triton.default,
            (images, 3, 8, mean, std, torch.float16, False),
        )
    f = torch.compile(lambda x: crop_views(x, 3, 8, MEAN, STD), fullgraph=True)
    torch.testing.assert_close(f(images), crop_views(images, 3, 8, MEAN, STD))
