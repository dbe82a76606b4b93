"""dropout_add_layer_norm: every available backend against the pure-PyTorch reference.

Tolerance (derived, not guessed): ref64 = the reference evaluated in float64 on the same
inputs (upcast) and the same dropout mask. For the output and each gradient, a backend's
max error against ref64 must be <= 2 x the max error of plain PyTorch (dropout + add +
F.layer_norm, autograd) at the input dtype, + atol = eps(dtype) x max|ref64|. The mask is
drawn by the wrapper from `generator`, so the same seed gives the same mask on every backend.
"""

import os
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lcnet_fast
from lcnet_fast.ops import _backend, dropout_add_layer_norm, dropout_add_layer_norm_reference
from lcnet_fast.ops.dropout_add_layer_norm import make_keep_mask

OP = "dropout_add_layer_norm"
HAS_CUDA = torch.cuda.is_available()
INFO = lcnet_fast.build_info()


def backends_for(device_type):
    return [b for b in _backend.BACKENDS if _backend.unavailable_reason(b, OP, device_type) is None]


CPU_BACKENDS = backends_for("cpu")
CPU_NATIVE = [b for b in CPU_BACKENDS if b != "triton"]  # triton on CPU = slow interpreter
HAS_CPP = "cpp" in CPU_BACKENDS
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
needs_cpp = pytest.mark.skipif(
    not HAS_CPP, reason=str(_backend.unavailable_reason("cpp", OP, "cpu"))
)
needs_interp = pytest.mark.skipif(
    "triton" not in CPU_BACKENDS, reason=str(_backend.unavailable_reason("triton", OP, "cpu"))
)


@pytest.fixture
def use_backend(monkeypatch):
    def set_backend(name):
        monkeypatch.setenv(_backend.ENV_VAR, name)

    return set_backend


def make_inputs(shape, dtype, device="cpu", seed=0, weight_dtype=None):
    g = torch.Generator().manual_seed(seed)
    d = shape[-1]
    x = (torch.randn(shape, generator=g) * 2 + 0.5).to(device=device, dtype=dtype)
    r = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    wd = weight_dtype or dtype
    w = (1 + 0.3 * torch.randn(d, generator=g)).to(device=device, dtype=wd)
    b = (0.2 * torch.randn(d, generator=g)).to(device=device, dtype=wd)
    dy = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    return x, r, w, b, dy


def forward_backward(fn, x, r, w, b, dy, same):
    """fn(x, r, w, b) and its gradients; same=True passes one tensor as x and residual."""
    xl = x.detach().clone().requires_grad_()
    rl = xl if same else r.detach().clone().requires_grad_()
    wl = w.detach().clone().requires_grad_()
    bl = b.detach().clone().requires_grad_()
    out = fn(xl, rl, wl, bl)
    out.backward(dy)
    grads = [xl.grad, None if same else rl.grad, wl.grad, bl.grad]
    return out.detach(), grads


def assert_derived_close(fast, torch_same, ref64, dtype, what, magnitude=None):
    """magnitude: the size the rounding error scales with (default max|ref64|);
    check_backend derives one per result with error_scales."""
    assert fast.shape == ref64.shape, what
    assert fast.dtype == torch_same.dtype, what
    if ref64.numel() == 0:
        return
    fast_err = (fast.double() - ref64).abs().max().item()
    torch_err = (torch_same.double() - ref64).abs().max().item()
    if magnitude is None:
        magnitude = ref64.abs().max().item()
    atol = torch.finfo(dtype).eps * magnitude + torch.finfo(dtype).tiny
    assert fast_err <= 2 * torch_err + atol, (what, fast_err, torch_err, atol)


def error_scales(x, r, w, b, dy, mask, p, eps, same):
    """The size each result's rounding error scales with (see assert_derived_close), in
    float64 from the pre-norm rows h.

    xhat = (h - mean(h)) * rstd carries an error of about eps * max|h| * rstd besides its
    own rounding: h - mean(h) cancels when a row's values are close (tiny D), so each
    result counts |xhat| + that. out = xhat * w + b. grad_residual = (g - xhat * a - c) *
    rstd (g = dy * w, a = mean(g * xhat), c = mean(g)) cancels towards 0 for tiny D, so its
    scale is that of its terms, with xhat's error carried through to first order; grad_x
    = grad_residual * keep / (1 - p) (+ grad_residual when x is residual). grad_weight and
    grad_bias sum |dy * xhat| and |dy| over rows. Measured on ~2800 random cases (fp32,
    fp16, bf16; D 1-80; cpp and torch backends): fast error - 2 x torch error stayed
    <= 0.6 eps x these. max|result| alone would be up to 15x too small for grad_residual at
    D = 2 (about 8 % of D <= 3 cases would fail, whichever mask)."""
    keep = mask.double() / (1 - p) if mask is not None else 1.0
    h = x.double() * keep + (x if same else r).double()
    rstd = (h.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
    xhat = (h - h.mean(-1, keepdim=True)) * rstd
    xhat_err = h.abs().amax(-1, keepdim=True) * rstd
    g = dy.double() * w.double()
    a, c = (g * xhat).mean(-1, keepdim=True).abs(), g.mean(-1, keepdim=True).abs()
    dres = (
        g.abs() + xhat.abs() * a + c + xhat_err * (a + xhat.abs() * g.abs().mean(-1, keepdim=True))
    ) * rstd
    d = x.shape[-1]
    dy64 = dy.double().reshape(-1, d)
    return {
        "out": (w.double().abs() * (xhat.abs() + xhat_err) + b.double().abs()).max().item(),
        "x": (dres * (keep + (1.0 if same else 0.0))).max().item(),
        "residual": dres.max().item(),
        "weight": (dy64 * (xhat.abs() + xhat_err).reshape(-1, d)).abs().sum(0).max().item(),
        "bias": dy64.abs().sum(0).max().item(),
    }


def check_backend(
    shape,
    dtype,
    p,
    training=True,
    same=False,
    device="cpu",
    seed=0,
    weight_dtype=None,
    transform=None,
):
    """Run the public op (backend from LCNET_FAST_BACKEND) and compare it, output and
    gradients, with PyTorch at the same precision and in float64, same mask."""
    x, r, w, b, dy = make_inputs(shape, dtype, device, seed, weight_dtype)
    if transform is not None:  # e.g. make x / residual non-contiguous views
        x, r = transform(x), transform(r)
        g = torch.Generator().manual_seed(seed + 1)
        dy = torch.randn(x.shape, generator=g).to(device=device, dtype=dtype)
        w, b = w[: x.shape[-1]], b[: x.shape[-1]]
    eps = 1e-5

    def fast(xl, rl, wl, bl):
        g = torch.Generator(device=device).manual_seed(seed)
        return dropout_add_layer_norm(xl, rl, wl, bl, p, eps, training=training, generator=g)

    out, grads = forward_backward(fast, x, r, w, b, dy, same)
    mask = None
    if training and p > 0:
        mask = make_keep_mask(x.shape, p, device, torch.Generator(device=device).manual_seed(seed))

    def ref(xl, rl, wl, bl):
        return dropout_add_layer_norm_reference(xl, rl, wl, bl, mask, p, eps)

    t_out, t_grads = forward_backward(ref, x, r, w, b, dy, same)
    r_out, r_grads = forward_backward(
        ref, x.double(), r.double(), w.double(), b.double(), dy.double(), same
    )
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    scales = error_scales(x, r, w, b, dy, mask, p, eps, same)
    assert_derived_close(out, t_out, r_out, dtype, "out", scales["out"])
    names = ("x", "residual", "weight", "bias")
    for name, gf, gt, g64 in zip(names, grads, t_grads, r_grads, strict=True):
        if g64 is None:
            continue
        assert gf is not None, f"no gradient for {name}"
        assert gf.dtype == gt.dtype, name
        assert_derived_close(gf, gt, g64, dtype, f"grad {name}", scales[name])
    return out, grads


SHAPES = [(1, 1), (5, 7), (5, 33), (1, 768), (2, 3, 33)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_cpu_backends_match_reference(use_backend, backend, shape, dtype, p):
    use_backend(backend)
    check_backend(shape, dtype, p)


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_x_is_residual(use_backend, backend, dtype):
    use_backend(backend)
    for p in (0.0, 0.25):
        check_backend((3, 5, 40), dtype, p, same=True)


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_float32_weight_with_half_input(use_backend, backend, dtype):
    use_backend(backend)
    check_backend((4, 48), dtype, 0.2, weight_dtype=torch.float32)


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_autocast_promotes_mixed_x_and_residual(use_backend, backend):
    """Under autocast a bf16 matmul output meets an fp32 residual: promoted like x + residual
    (outside autocast the same call is a dtype error)."""
    use_backend(backend)
    x, r, w, b, dy = make_inputs((3, 24), torch.float32)
    xb = x.bfloat16()
    with pytest.raises(TypeError, match="residual must have x's dtype"):
        dropout_add_layer_norm(xb, r, w, b, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dropout_add_layer_norm(xb, r, w, b, 0.2, generator=torch.Generator().manual_seed(1))
    mask = make_keep_mask(x.shape, 0.2, "cpu", torch.Generator().manual_seed(1))
    expected = dropout_add_layer_norm_reference(xb.float(), r, w, b, mask, 0.2)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_training_false_draws_no_mask(use_backend, backend):
    use_backend(backend)
    x, r, w, b, _ = make_inputs((4, 16), torch.float32)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    global_state = torch.get_rng_state()
    out = dropout_add_layer_norm(x, r, w, b, 0.5, training=False, generator=g)
    assert torch.equal(g.get_state(), state) and torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(out, dropout_add_layer_norm(x, r, w, b, 0.0))
    check_backend((4, 16), torch.float32, 0.5, training=False)
    check_backend((4, 16), torch.float16, 0.5, training=False, same=True)


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_non_contiguous_inputs(use_backend, backend):
    use_backend(backend)
    # transposed views, a sliced last dim, and a stride-0 batch broadcast (LLCD's q_lbl)
    check_backend((6, 9, 20), torch.float32, 0.3, transform=lambda t: t.transpose(0, 1))
    check_backend((4, 40), torch.float32, 0.3, transform=lambda t: t[:, ::2])
    check_backend((1, 5, 24), torch.float32, 0.0, same=True, transform=lambda t: t.expand(3, 5, 24))
    check_backend((1, 5, 24), torch.float16, 0.3, transform=lambda t: t.expand(3, 5, 24))


@pytest.mark.parametrize("backend", CPU_NATIVE)
def test_empty_rows(use_backend, backend):
    use_backend(backend)
    x, r, w, b, _ = make_inputs((0, 8), torch.float32)
    x.requires_grad_()
    w.requires_grad_()
    out = dropout_add_layer_norm(x, r, w, b, 0.1)
    assert out.shape == (0, 8)
    out.sum().backward()
    assert torch.equal(w.grad, torch.zeros(8))


def test_same_seed_same_result_on_every_backend(use_backend):
    x, r, w, b, _ = make_inputs((7, 33), torch.float32)
    outs = {}
    for backend in CPU_BACKENDS:
        use_backend(backend)
        outs[backend] = dropout_add_layer_norm(
            x, r, w, b, 0.4, generator=torch.Generator().manual_seed(3)
        )
    ref = outs["torch"]
    for backend, out in outs.items():
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5, msg=backend)
    # the global RNG too: manual_seed reproduces the output
    torch.manual_seed(11)
    a = dropout_add_layer_norm(x, r, w, b, 0.4)
    torch.manual_seed(11)
    assert torch.equal(a, dropout_add_layer_norm(x, r, w, b, 0.4))
    assert not torch.equal(a, dropout_add_layer_norm(x, r, w, b, 0.4))


def test_torch_backend_is_dropout_add_layer_norm_bit_for_bit(use_backend):
    """The torch backend is exactly eager dropout (as F.dropout scales) + add + F.layer_norm
    with the mask make_keep_mask draws from the global RNG."""
    use_backend("torch")
    x, r, w, b, _ = make_inputs((9, 64), torch.float32)
    torch.manual_seed(123)
    mask = make_keep_mask(x.shape, 0.3, "cpu")
    expected = F.layer_norm(x * (mask.float() * (1 / 0.7)) + r, (64,), w, b, 1e-5)
    torch.manual_seed(123)
    assert torch.equal(dropout_add_layer_norm(x, r, w, b, 0.3), expected)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.9])
def test_keep_fraction(p):
    """Each element is kept with probability 1 - p. On CPU, even and odd positions come from
    the low and high halves of one random 64-bit word, so check them separately (a bias in
    either half, e.g. a word range missing the top bit, shows up there); odd numel."""
    m = make_keep_mask((201, 499), p, "cpu", torch.Generator().manual_seed(0))
    assert m.dtype == torch.bool and m.shape == (201, 499) and m.is_contiguous()
    flat = m.flatten()
    for half in (flat[0::2], flat[1::2]):
        assert abs(half.float().mean().item() - (1 - p)) < 0.01  # > 4 standard deviations


def test_auto_choice():
    os.environ.pop(_backend.ENV_VAR, None)
    assert _backend.choose_backend(OP, "cpu") == ("cpp" if HAS_CPP else "torch")
    assert _backend.choose_backend(OP, "cpu", "torch.float32") == ("cpp" if HAS_CPP else "torch")
    assert _backend.choose_backend(OP, "cpu", "torch.float64") == "torch"
    assert _backend.choose_backend(OP, "cuda", "torch.float64") == "torch"


@needs_cpp
def test_auto_runs_the_reference_on_cpu_when_nothing_is_dropped(use_backend, monkeypatch):
    """Measured rule (BENCHMARKS.md): without a mask the C++ kernel is slower than aten's add +
    layer_norm, so `auto` runs the reference then; with a mask, or forced, the kernel runs."""
    module = sys.modules["lcnet_fast.ops.dropout_add_layer_norm"]
    calls = []
    reference = module.dropout_add_layer_norm_reference

    def counting(*args, **kwargs):
        calls.append(1)
        return reference(*args, **kwargs)

    monkeypatch.setattr(module, "dropout_add_layer_norm_reference", counting)
    x, r, w, b, _ = make_inputs((3, 5, 8), torch.float32)
    use_backend("auto")
    for p, training, runs_reference in ((0.1, False, True), (0.0, True, True), (0.1, True, False)):
        calls.clear()
        dropout_add_layer_norm(x, r, w, b, p, training=training)
        assert bool(calls) == runs_reference, (p, training)
    use_backend("cpp")
    calls.clear()
    dropout_add_layer_norm(x, r, w, b, 0.0)
    assert not calls


def test_forced_backend_that_cannot_run(use_backend):
    x, r, w, b, _ = make_inputs((2, 4), torch.float32)
    use_backend("cuda")
    with pytest.raises(_backend.BackendUnavailableError, match="LCNET_FAST_BACKEND=cuda"):
        dropout_add_layer_norm(x, r, w, b, 0.1)


def _good(**change):
    x, r, w, b, _ = make_inputs((2, 3, 8), torch.float32)
    kwargs = dict(x=x, residual=r, weight=w, bias=b, p=0.1)
    kwargs.update(change)
    return kwargs


ERRORS = [
    (dict(x=torch.zeros(2, 3, 8, dtype=torch.int64)), TypeError, "x must be float32"),
    (
        dict(
            x=torch.zeros(2, 3, 8, dtype=torch.complex64),
            residual=torch.zeros(2, 3, 8, dtype=torch.complex64),
        ),
        TypeError,
        "x must be float32",
    ),
    (
        dict(residual=torch.zeros(2, 3, 8, dtype=torch.float64)),
        TypeError,
        "residual must have x's dtype",
    ),
    (dict(x=[1.0]), TypeError, "x must be a torch.Tensor"),
    (dict(x=torch.zeros(2, 3, 0), residual=torch.zeros(2, 3, 0)), ValueError, "D >= 1"),
    (dict(residual=torch.zeros(2, 4, 8)), ValueError, "residual must have x's shape"),
    (
        dict(residual=torch.zeros(2, 3, 8, dtype=torch.float16)),
        TypeError,
        "residual must have x's dtype",
    ),
    (dict(weight=torch.ones(7)), ValueError, "weight must have shape \\(8,\\)"),
    (dict(bias=torch.zeros(1, 8)), ValueError, "bias must have shape \\(8,\\)"),
    (dict(weight=torch.ones(8, dtype=torch.float64)), TypeError, "weight must be"),
    (
        dict(
            x=torch.zeros(2, 3, 8, dtype=torch.float64),
            residual=torch.zeros(2, 3, 8, dtype=torch.float64),
            weight=torch.ones(8, dtype=torch.float16),
        ),
        TypeError,
        "weight must be torch.float64",
    ),
    (dict(bias=torch.ones(8, dtype=torch.float16)), TypeError, "bias must be"),
    (dict(weight=torch.ones(8, device="meta")), ValueError, "weight must be on x's device"),
    (dict(p=1.0), ValueError, "p must be in \\[0, 1\\)"),
    (dict(p=-0.1), ValueError, "p must be in \\[0, 1\\)"),
    (dict(p=True), TypeError, "p must be a float"),
    (dict(p=torch.tensor(0.1)), TypeError, "p must be a float"),
    (dict(eps=-1.0), ValueError, "eps must be a float >= 0"),
    (dict(training=1), TypeError, "training must be a bool"),
]


@pytest.mark.parametrize("change,exc,msg", ERRORS)
def test_bad_arguments(change, exc, msg):
    with pytest.raises(exc, match=msg):
        dropout_add_layer_norm(**_good(**change))


@needs_cpp
def test_cpp_op_checks_its_arguments():
    """A direct torch.ops call (no Python wrapper) must fail cleanly, never read OOB."""
    fwd = torch.ops.lcnet_fast.dropout_add_layer_norm
    bwd = torch.ops.lcnet_fast.dropout_add_layer_norm_backward
    x, r, w, b, dy = make_inputs((3, 8), torch.float32)
    mean, rstd = torch.zeros(3), torch.ones(3)
    bad_fwd = [
        ((x, r[:2], w, b, None, 1.0, 1e-5), "residual shape \\(2, 8\\) must equal x shape"),
        ((x, r.half(), w, b, None, 1.0, 1e-5), "residual dtype"),
        ((x, r, w[:7], b, None, 1.0, 1e-5), "weight must have shape \\(8,\\)"),
        ((x, r, w, b[:7], None, 1.0, 1e-5), "bias must have shape \\(8,\\)"),
        ((x, r, w, b.half(), None, 1.0, 1e-5), "bias dtype"),
        ((x, r, w, b, torch.ones(3, 7, dtype=torch.bool), 1.0, 1e-5), "mask shape"),
        ((x, r, w, b, torch.ones(3, 8), 1.0, 1e-5), "mask must be bool or uint8"),
        ((x.double(), r.double(), w, b, None, 1.0, 1e-5), "x must be float32"),
        ((x, r, w, b, None, 1.0, -1.0), "eps must be >= 0"),
    ]
    for args, msg in bad_fwd:
        with pytest.raises(RuntimeError, match=msg):
            fwd(*args)
    with pytest.raises(RuntimeError, match="mean and rstd must be float32 with one value"):
        bwd(dy, x, r, w, None, mean[:2], rstd, 1.0)
    with pytest.raises(RuntimeError, match="grad_out must match x"):
        bwd(dy[:2], x, r, w, None, mean, rstd, 1.0)


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("with_mask", [False, True])
def test_opcheck_cpp(dtype, with_mask):
    x, r, w, b, dy = make_inputs((2, 3, 10), dtype)
    x.requires_grad_()
    r.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    mask = (
        make_keep_mask(x.shape, 0.3, "cpu", torch.Generator().manual_seed(0)) if with_mask else None
    )
    scale = 1 / 0.7 if with_mask else 1.0
    torch.library.opcheck(
        torch.ops.lcnet_fast.dropout_add_layer_norm.default, (x, r, w, b, mask, scale, 1e-5)
    )
    _, mean, rstd = torch.ops.lcnet_fast.dropout_add_layer_norm(x, r, w, b, mask, scale, 1e-5)
    torch.library.opcheck(
        torch.ops.lcnet_fast.dropout_add_layer_norm_backward.default,
        (dy, x.detach(), r.detach(), w.detach(), mask, mean.detach(), rstd.detach(), scale),
    )


@pytest.mark.parametrize("backend", CPU_NATIVE)
@pytest.mark.parametrize("p,training", [(0.0, True), (0.2, False), (0.2, True)])
def test_compile_fullgraph_no_graph_break(use_backend, backend, p, training):
    use_backend(backend)
    x, r, w, b, _ = make_inputs((2, 5, 16), torch.float32)
    x.requires_grad_()
    w.requires_grad_()

    def f(x, r, w, b):
        return dropout_add_layer_norm(x, r, w, b, p, training=training).square().mean()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    loss = compiled(x, r, w, b)
    loss.backward()
    if p == 0 or not training:  # deterministic: compare with eager
        gx, gw = x.grad, w.grad
        x.grad = w.grad = None
        expected = f(x, r, w, b)
        expected.backward()
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(gx, x.grad)
        torch.testing.assert_close(gw, w.grad)


@pytest.mark.parametrize("backend", CPU_NATIVE)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lead=st.lists(st.integers(1, 4), min_size=0, max_size=2),
    d=st.integers(1, 80),
    p=st.sampled_from([0.0, 0.1, 0.5]),
    same=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_against_reference(use_backend, backend, lead, d, p, same, seed):
    use_backend(backend)
    check_backend((*lead, d), torch.float32, p, same=same, seed=seed)


# --- the C++ kernel's per-ISA builds ----------------------------------------------------------
# csrc/cpu/dropout_add_layer_norm.cpp compiles its row loops for the x86-64 baseline (SSE2),
# AVX2+FMA and AVX-512 and runs the best build the CPU has, capped by ATEN_CPU_CAPABILITY
# (PyTorch's switch; the kernel reads it on every call, csrc/cpu/cpu_isa.h). "default" runs the
# baseline build, which a CPU without AVX2 runs. Where the CPU lacks a build (or is not x86), a
# cap runs the best build there is, so these tests still pass and test what exists.
# Shapes: D = 5 (tail loop only), 20 and 77 (kLanes = 16 vector part + tail), 768 (the
# decoder's D; 24 x 768 makes the backward use 2 dweight/dbias blocks).

ISA_CAPS = ("default", "avx2", "avx512")
ISA_SHAPES = [(4, 5), (7, 20), (3, 2, 77), (24, 768)]


@needs_cpp
@pytest.mark.parametrize("cap", ISA_CAPS)
@pytest.mark.parametrize("shape", ISA_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.3])  # 0.0: no mask (h = x + r); 0.3: the mask path
def test_cpp_isa_build_matches_reference(use_backend, monkeypatch, cap, shape, dtype, p):
    use_backend("cpp")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", cap)
    check_backend(shape, dtype, p)


def assert_builds_agree(a, b, dtype, scale, what):
    """Two builds' results agree to |a - b| <= 2 eps(fp32) x scale, + one ulp of dtype for
    fp16/bf16. scale: the result's error scale (error_scales).

    Every build runs the same fp32 operations in the same order (kLanes accumulators, the
    pairwise tree, fixed dweight/dbias blocks), so they would give the same bits but for FMA:
    the AVX2 and AVX-512 builds contract a * b + c into one rounding (GCC's default
    -ffp-contract=fast), the baseline rounds the product too. Dropping a rounding perturbs a
    result like a rounding error does, so two builds differ by about one fp32 rounding error
    of the result each way: 2 eps x scale (on 1500 random fp32 cases, D 1-1024, p 0-0.5, the
    largest difference was 1.45 eps x scale, for out). fp16/bf16 results are those fp32 values
    rounded once to dtype: where they straddle a rounding boundary the two builds land on
    neighbouring values, one ulp of dtype apart (<= eps(dtype) x |value|, or the subnormal
    spacing eps x tiny). The AVX2 and AVX-512 builds are not bit-identical either (vector
    width changes where the compiler contracts)."""
    assert a.dtype == b.dtype and a.shape == b.shape, what
    a64, b64 = a.double(), b.double()
    bound = 2 * torch.finfo(torch.float32).eps * scale
    if dtype != torch.float32:
        fi = torch.finfo(dtype)
        bound = bound + fi.eps * torch.maximum(a64.abs(), b64.abs()) + fi.eps * fi.tiny
    excess = (a64 - b64).abs() - bound
    assert bool((excess <= 0).all()), (what, excess.max().item(), scale)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_cpp_isa_builds_agree(use_backend, monkeypatch, dtype, p):
    use_backend("cpp")
    eps, seed = 1e-5, 0
    for shape in ISA_SHAPES:
        x, r, w, b, dy = make_inputs(shape, dtype, seed=seed)

        def fast(xl, rl, wl, bl):
            g = torch.Generator().manual_seed(seed)  # the same mask for every build
            return dropout_add_layer_norm(xl, rl, wl, bl, p, eps, generator=g)

        results = {}
        for cap in ISA_CAPS:
            monkeypatch.setenv("ATEN_CPU_CAPABILITY", cap)
            out, grads = forward_backward(fast, x, r, w, b, dy, same=False)
            results[cap] = dict(
                zip(("out", "x", "residual", "weight", "bias"), (out, *grads), strict=True)
            )
        mask = (
            make_keep_mask(x.shape, p, "cpu", torch.Generator().manual_seed(seed))
            if p > 0
            else None
        )
        scales = error_scales(x, r, w, b, dy, mask, p, eps, same=False)
        for cap in ISA_CAPS[1:]:
            for name, value in results[cap].items():
                assert_builds_agree(
                    value, results["default"][name], dtype, scales[name], (cap, shape, name)
                )


# --- Triton in the CPU interpreter (TRITON_INTERPRET=1 from tests/conftest.py) ---------------


@needs_interp
@pytest.mark.parametrize(
    "shape,dtype,p,same",
    [
        ((1, 1), torch.float32, 0.0, False),
        ((5, 7), torch.float32, 0.3, False),
        ((5, 7), torch.float16, 0.3, True),
        ((2, 3, 33), torch.float16, 0.0, False),
        ((1, 768), torch.float32, 0.1, False),
        ((4, 33), torch.float32, 0.5, True),
    ],
    ids=str,
)
def test_triton_interpreter_matches_reference(use_backend, shape, dtype, p, same):
    use_backend("triton")
    check_backend(shape, dtype, p, same=same)


@needs_interp
def test_triton_interpreter_non_contiguous_mixed_and_eval(use_backend):
    use_backend("triton")
    check_backend((3, 2, 20), torch.float32, 0.3, transform=lambda t: t.transpose(0, 1))
    check_backend((3, 24), torch.float16, 0.2, weight_dtype=torch.float32)
    check_backend((3, 24), torch.float32, 0.5, training=False)
    x, r, w, b, _ = make_inputs((0, 8), torch.float32)
    assert dropout_add_layer_norm(x, r, w, b, 0.1).shape == (0, 8)


@needs_interp
def test_triton_interpreter_opcheck(use_backend):
    x, r, w, b, dy = make_inputs((3, 12), torch.float32)
    mask = make_keep_mask(x.shape, 0.3, "cpu", torch.Generator().manual_seed(0))
    utils = ("test_schema", "test_faketensor", "test_autograd_registration")
    for m, scale in ((mask, 1 / 0.7), (None, 1.0)):
        args = (x.requires_grad_(), r, w.requires_grad_(), b, m, scale, 1e-5)
        torch.library.opcheck(
            torch.ops.lcnet_fast.dropout_add_layer_norm_triton.default, args, test_utils=utils
        )
        _, mean, rstd = torch.ops.lcnet_fast.dropout_add_layer_norm_triton(*args)
        torch.library.opcheck(
            torch.ops.lcnet_fast.dropout_add_layer_norm_triton_backward.default,
            (dy, x.detach(), r, w.detach(), m, mean.detach(), rstd.detach(), scale),
            test_utils=("test_schema", "test_faketensor"),
        )


@needs_interp
def test_triton_interpreter_compile_fullgraph(use_backend):
    """Dynamo traces the Triton path (lazy import included) without graph breaks. backend
    "eager": AOT tracing of a triton_op runs the interpreter on fake tensors, which fails
    (interpreter-only; the GPU test compiles with inductor)."""
    use_backend("triton")
    x, r, w, b, dy = make_inputs((2, 16), torch.float32)
    f = torch.compile(
        lambda x, r, w, b: dropout_add_layer_norm(x, r, w, b, 0.0) * 2,
        fullgraph=True,
        backend="eager",
    )
    ref = lambda x, r, w, b: dropout_add_layer_norm_reference(x, r, w, b, None, 0.0) * 2
    out, grads = forward_backward(f, x, r, w, b, dy, same=False)
    ref_out, ref_grads = forward_backward(ref, x, r, w, b, dy, same=False)
    torch.testing.assert_close(out, ref_out)
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg)


@needs_interp
def test_triton_rejects_rows_too_wide_for_registers(use_backend):
    use_backend("triton")
    x, r, w, b, _ = make_inputs((1, 16385), torch.float32)
    with pytest.raises(ValueError, match="exceed 65536 bytes"):
        dropout_add_layer_norm(x, r, w, b, 0.0)


# --- GPU (run by benchmarks/gpu_check.sh) -----------------------------------------------------


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 33), (1000, 768), (3, 4096)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("p,same", [(0.0, False), (0.1, True)])  # few Triton specialisations
def test_gpu_backends_match_reference(use_backend, backend, shape, dtype, p, same):
    reason = _backend.unavailable_reason(backend, OP, "cuda")
    if reason:
        pytest.skip(reason)
    use_backend(backend)
    check_backend(shape, dtype, p, same=same, device="cuda")


@gpu
@pytest.mark.gpu
def test_gpu_opcheck_and_compile(use_backend):
    x, r, w, b, dy = make_inputs(
        (4, 7, 96), torch.bfloat16, device="cuda", weight_dtype=torch.float32
    )
    mask = make_keep_mask(x.shape, 0.1, "cuda")
    torch.library.opcheck(
        torch.ops.lcnet_fast.dropout_add_layer_norm_triton.default,
        (x.requires_grad_(), r, w.requires_grad_(), b, mask, 1 / 0.9, 1e-5),
    )
    use_backend("triton")
    f = lambda x, r, w, b: dropout_add_layer_norm(x, r, w, b, 0.0).float().square().mean()
    compiled = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(compiled(x, r, w, b), f(x, r, w, b))
