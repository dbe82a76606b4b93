"""cross_attention: the Triton kernels (CPU interpreter here, GPU under -m gpu) and the torch
reference against an fp64 oracle.

Tolerance (derived, not guessed): with ref64 = softmax(q k^T s) v and its gradients computed in
float64 from the same (already rounded) inputs, a backend's max error must be
    <= 2 x (max error of PyTorch SDPA at the same dtype) + atol,
where atol is the rounding bound of the one extra rounding the kernels make before each second
matmul (P, dS rounded to the input dtype, as in FlashAttention): |fl(x) y - x y| <= eps |x| |y|,
so atol = eps(dtype) * max(P |V|) for out, eps * max(T |K|) * s for dq,
eps * max(T^T |Q|) * s for dk and eps * max(P^T |dO|) for dv, where
T = |dS| + P (|dO| |V|^T + rowsum(|dO O|)) bounds the terms of dS = P (dO V^T - rowsum(dO O)),
whose cancellation leaves a rounding error of the size of its terms (e.g. Nk = 1: dS = 0
exactly, but computed as the difference of two rounded dot products). Plus the fp32 exponent
term: P = exp2(x) with x = log2(e) (q.k s - lse) formed in fp32 has relative error
~ eps32 |x|, so each P (and dS) above also carries A = 2 log2(e) (|q||k| s + |lse|) + 2 ulps
of fp32: + eps32 * max((P A) |V|), ... for each result.
"""

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcnet_fast.ops import _backend, cross_attention, cross_attention_reference
from lcnet_fast.ops.cross_attention import choose_num_kv_splits

HAS_CUDA = torch.cuda.is_available()
TRITON_CPU_REASON = _backend.unavailable_reason("triton", "cross_attention", "cpu")
needs_interp = pytest.mark.skipif(TRITON_CPU_REASON is not None, reason=str(TRITON_CPU_REASON))
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
LOG2E = 1 / math.log(2)
EPS32 = torch.finfo(torch.float32).eps


def choose_backend(device_type, dtype_name):
    return _backend.choose_backend("cross_attention", device_type, dtype_name)


@pytest.fixture
def use_backend(monkeypatch):
    def set_backend(name):
        monkeypatch.setenv(_backend.ENV_VAR, name)

    return set_backend


def make_qkv(b, h, nq, nk, dh, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(b, h, n, dh, generator=g, dtype=torch.float32).to(device, dtype)
        for n in (nq, nk, nk)
    )
    do = torch.randn(b, h, nq, dh, generator=g).to(device, dtype)
    return q, k, v, do


def oracle(q, k, v, do, scale, zmask=None):
    """fp64 out and grads, and per result the two magnitude bounds of the module doc:
    (bound of the input-dtype roundings, bound of the fp32 exponent roundings).
    zmask: keep / (1 - p) of an attention dropout (None: no dropout); out = (P Z) V."""
    q, k, v, do = (t.detach().double() for t in (q, k, v, do))
    scores = q @ k.transpose(-1, -2) * scale
    p = torch.softmax(scores, dim=-1)
    zm = torch.ones_like(p) if zmask is None else zmask.to(p.device, torch.float64)
    pz = p * zm
    out = pz @ v
    dp = (do @ v.transpose(-1, -2)) * zm
    ds = p * (dp - (do * out).sum(-1, keepdim=True))
    grads = (ds @ k * scale, ds.transpose(-1, -2) @ q * scale, pz.transpose(-1, -2) @ do)
    # dS = P (dP - rowsum(dO O)) cancels: its rounding scales with the terms, not the result
    t0 = ds.abs() + p * (
        zm * (do.abs() @ v.abs().transpose(-1, -2)) + (do * out).abs().sum(-1, keepdim=True)
    )
    rounding = (
        pz @ v.abs(),
        t0 @ k.abs() * scale,
        t0.transpose(-1, -2) @ q.abs() * scale,
        pz.transpose(-1, -2) @ do.abs(),
    )
    # P = exp2(x) with x = log2(e) (q.k s - lse) summed in fp32: relative error ~ eps32 |x| terms
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    a = 2 * LOG2E * (q.abs() @ k.abs().transpose(-1, -2) * scale + lse.abs()) + 2
    pza, dsa = pz * a, ds.abs() * a
    exponent = (
        pza @ v.abs(),
        dsa @ k.abs() * scale,
        dsa.transpose(-1, -2) @ q.abs() * scale,
        pza.transpose(-1, -2) @ do.abs(),
    )
    return (
        out,
        grads,
        [
            (r.max().item(), e.max().item()) if r.numel() else (0.0, 0.0)
            for r, e in zip(rounding, exponent, strict=True)
        ],
    )


def run(fn, q, k, v, do, **kw):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v, **kw)
    grads = torch.autograd.grad(out, (q, k, v), do)
    return out.detach(), grads


def bnhd_strides(shape):
    """Strides of the (B, H, N, Dh) view of (B, N, H, Dh) memory (as flash SDPA returns)."""
    b, h, n, dh = shape
    return (n * h * dh, dh, h * dh, 1)


def assert_bnhd_layout(t, name="out"):
    """t is what the Triton op allocates: a (B, H, N, Dh) view of (B, N, H, Dh) memory, so
    t.transpose(1, 2).reshape(B, N, H*Dh) is a view (no copy)."""
    assert t.stride() == bnhd_strides(t.shape), (name, tuple(t.shape), t.stride())
    b, h, n, dh = t.shape
    merged = t.transpose(1, 2).reshape(b, n, h * dh)
    assert merged.data_ptr() == t.data_ptr() and (t.numel() == 0 or merged._is_view()), name


def masked_attention(q, k, v, scale, zmask):
    """PyTorch's own ops at q's dtype with a given dropout mask: the error yardstick for the
    dropout parity tests (SDPA cannot take an external dropout mask)."""
    weights = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1)
    return (weights * zmask.to(q.dtype)) @ v


def check_parity(q, k, v, do, scale=None, dropout_p=0.0, seed=None, **kw):
    """Run cross_attention (current backend) and PyTorch at the same dtype; compare vs fp64.

    With dropout_p > 0 the Triton op runs with the given seed tensor and both references use
    the mask that seed gives (dropout_keep_mask), so the comparison is exact, not statistical.
    On the Triton path out, dq, dk, dv must have the (B, N, H, Dh) memory layout.
    """
    s = scale if scale is not None else 1 / math.sqrt(q.shape[-1])
    eps = torch.finfo(q.dtype).eps
    if dropout_p > 0:
        from cross_attention_keep_mask import dropout_keep_mask  # tests/ops

        b, h, nq, dh = q.shape
        zmask = dropout_keep_mask(seed, b, h, nq, k.shape[2], dropout_p) / (1 - dropout_p)
        splits = kw.get("num_kv_splits") or 1
        out, grads = run(
            lambda a, b_, c: torch.ops.lcnet_fast.cross_attention_triton(
                a, b_, c, s, splits, dropout_p, seed
            )[0],
            q,
            k,
            v,
            do,
        )
        t_out, t_grads = run(masked_attention, q, k, v, do, scale=s, zmask=zmask)
    else:
        zmask = None
        out, grads = run(cross_attention, q, k, v, do, scale=scale, **kw)
        t_out, t_grads = run(cross_attention_reference, q, k, v, do, scale=scale)
    ref_out, ref_grads, bounds = oracle(q, k, v, do, s, zmask)
    assert out.shape == q.shape and out.dtype == q.dtype and out.device == q.device
    if dropout_p > 0 or choose_backend(q.device.type, str(q.dtype)) == "triton":
        for name, t in zip(("out", "dq", "dk", "dv"), (out, *grads), strict=True):
            assert_bnhd_layout(t, name)
    pairs = [("out", out, t_out, ref_out, bounds[0])]
    pairs += list(zip(("dq", "dk", "dv"), grads, t_grads, ref_grads, bounds[1:], strict=True))
    for name, fast, torch_val, ref, bound in pairs:
        assert fast.shape == ref.shape and fast.dtype == q.dtype, name
        if ref.numel() == 0:
            continue
        ref = ref.to(fast.device)
        fast_err = (fast.double() - ref).abs().max().item()
        torch_err = (torch_val.double() - ref).abs().max().item()
        atol = eps * bound[0] + EPS32 * bound[1] + torch.finfo(torch.float32).tiny
        assert fast_err <= 2 * torch_err + atol, (name, fast_err, torch_err, atol)
    return out, grads


# --- the reference / CPU auto path ----------------------------------------------------------


def test_auto_on_cpu_is_the_torch_reference(use_backend):
    use_backend("auto")
    assert choose_backend("cpu", str(torch.float32)) == "torch"
    q, k, v, do = make_qkv(2, 2, 5, 37, 24)
    check_parity(q, k, v, do)
    check_parity(q, k, v, do, scale=0.3)


def test_auto_rules(use_backend):
    use_backend("auto")
    assert choose_backend("cpu", "torch.float16") == "torch"
    if _backend.triton_unavailable_reason() is None:
        assert choose_backend("cuda", "torch.bfloat16") == "triton"
    assert choose_backend("cuda", "torch.float64") == "torch"
    assert choose_backend("cpu", "torch.float64") == "torch"


def test_dropout_on_cpu_auto_runs_sdpa_with_dropout(use_backend):
    use_backend("auto")
    q, k, v, _ = make_qkv(1, 2, 4, 9, 16)
    torch.manual_seed(3)
    out = cross_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(3)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert torch.equal(out, expected)
    assert not torch.allclose(out, cross_attention(q, k, v))


@pytest.mark.parametrize(
    "backend,dtype,dropout,msg",
    [
        ("cpp", torch.float32, 0.0, "no C\\+\\+/CUDA kernel"),
        ("cuda", torch.float32, 0.0, "no C\\+\\+/CUDA kernel"),
        (
            "triton",
            torch.float64,
            0.0,
            "triton kernels take float32/float16/bfloat16, got torch.float64",
        ),
        ("cpp", torch.float64, 0.0, "cpu torch.float64 tensors: there is no C\\+\\+/CUDA kernel"),
    ],
)
def test_forced_backend_that_cannot_run(use_backend, backend, dtype, dropout, msg):
    use_backend(backend)
    q, k, v, _ = make_qkv(1, 1, 2, 3, 16, dtype=dtype)
    with pytest.raises(_backend.BackendUnavailableError, match=msg):
        cross_attention(q, k, v, dropout_p=dropout)


def test_split_rule_at_llcd_shapes():
    assert choose_num_kv_splits(56, 8, 80, 1960) == 1  # training: grid already full
    assert choose_num_kv_splits(56, 8, 1960, 80) == 1
    assert choose_num_kv_splits(1, 8, 80, 1960) == 7  # single-image inference: split
    assert choose_num_kv_splits(1, 8, 80, 100) == 1  # too few keys to split
    assert choose_num_kv_splits(1, 1, 1, 10**6) == 32  # capped


def z(*shape):
    return torch.zeros(*shape)


ERRORS = [
    (dict(q=z(2, 3, 4)), ValueError, "q must have shape \\(B, H, N, Dh\\), got rank 3"),
    (dict(k=z(1, 2, 3, 4, 5)), ValueError, "k must have shape .* rank 5"),
    (dict(v=[1.0]), TypeError, "v must be a torch.Tensor"),
    (dict(k=z(2, 2, 7, 16), v=z(2, 2, 7, 16)), ValueError, "k shape .* batch, heads and head"),
    (dict(k=z(1, 3, 7, 16), v=z(1, 3, 7, 16)), ValueError, "k shape .* batch, heads"),
    (dict(v=z(1, 2, 7, 8)), ValueError, "v shape .* head dim"),
    (dict(v=z(1, 2, 6, 16)), ValueError, "k and v must have the same length Nk"),
    (
        dict(q=z(1, 2, 5, 300), k=z(1, 2, 7, 300), v=z(1, 2, 7, 300)),
        ValueError,
        "Dh = 300 .* exceeds the maximum 256",
    ),
    (dict(k=z(1, 2, 7, 16).half()), TypeError, "k dtype torch.float16 must match q dtype"),
    (dict(q=z(1, 2, 5, 16).int()), TypeError, "q must be one of"),
    (dict(k=z(1, 2, 0, 16), v=z(1, 2, 0, 16)), ValueError, "at least one key"),
    (dict(dropout_p=1.0), ValueError, "dropout_p must be in \\[0, 1\\), got 1.0"),
    (dict(dropout_p=-0.1), ValueError, "dropout_p must be in \\[0, 1\\)"),
    (dict(scale=float("nan")), ValueError, "scale must be finite"),
    (dict(num_kv_splits=0), ValueError, "num_kv_splits must be None or an int >= 1"),
]
if HAS_CUDA:
    ERRORS.append(
        (
            dict(k=z(1, 2, 7, 16).cuda(), v=z(1, 2, 7, 16).cuda()),
            ValueError,
            "k is on cuda:0 but q is on cpu",
        )
    )


@pytest.mark.parametrize("change,exc,msg", ERRORS)
def test_bad_arguments(change, exc, msg):
    kwargs = dict(q=z(1, 2, 5, 16), k=z(1, 2, 7, 16), v=z(1, 2, 7, 16))
    kwargs.update(change)
    with pytest.raises(exc, match=msg):
        cross_attention(**kwargs)


def test_triton_rejects_slices_beyond_int32_row_offsets():
    """The kernels' in-slice offsets are int32: a (batch, head) slice spanning 2**31 elements
    must be refused before launch, never addressed with wrapped offsets. (Meta tensors: the
    strides are real, the 8 GiB of memory is not.)"""
    from lcnet_fast.ops.triton.cross_attention import _check_int32_rows

    def meta(shape, strides):
        return torch.empty_strided(shape, strides, device="meta")

    fits = meta((2, 3, 2**20 + 1, 16), (3 * 2**31, 2**31, 2**11 - 1, 1))  # < 2**31
    _check_int32_rows(q=fits)
    wraps = meta((2, 3, 2**20 + 1, 16), (3 * 2**31, 2**31, 2**11, 1))  # 2**31 + 15
    with pytest.raises(RuntimeError, match="k of shape .* spans more than 2\\*\\*31"):
        _check_int32_rows(q=fits, k=wraps)
    # the batch and head strides alone may exceed int32 (those offsets are int64)
    _check_int32_rows(v=meta((4, 8, 16, 16), (2**40, 2**33, 16, 1)))


@needs_interp
@pytest.mark.parametrize("splits", [1, 2])
def test_triton_launchers_check_int32_rows(monkeypatch, splits):
    """Both launchers (forward, plain and split, and backward) run the int32 guard on every
    tensor they address."""
    from lcnet_fast.ops.triton import cross_attention as ca

    checked = []
    monkeypatch.setattr(ca, "_check_int32_rows", lambda **t: checked.append(sorted(t)))
    q, k, v, do = make_qkv(1, 2, 5, 40, 16)
    q.requires_grad_(True)
    out, _ = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 0.25, splits)
    out.backward(do)
    expected = [["k", "out", "q", "v"]] + ([["split_partials"]] if splits > 1 else [])
    expected.append(["dk", "dout", "dq", "dv", "k", "out", "q", "v"])
    assert checked == expected


def test_device_mismatch_message():
    q = z(1, 2, 5, 16)
    k = torch.zeros(1, 2, 7, 16, device="meta")
    with pytest.raises(ValueError, match="k is on meta but q is on cpu"):
        cross_attention(q, k, k)


def test_compile_fullgraph_torch_path(use_backend):
    use_backend("auto")
    q, k, v, _ = make_qkv(2, 2, 5, 11, 24)
    f = torch.compile(
        lambda a, b, c: cross_attention(a, b, c) * 2, fullgraph=True, backend="aot_eager"
    )
    torch.testing.assert_close(f(q, k, v), cross_attention_reference(q, k, v) * 2)


# --- Triton in the CPU interpreter (TRITON_INTERPRET=1 from tests/conftest.py) --------------

SHAPES = [  # (B, H, Nq, Nk, Dh)
    (1, 1, 1, 1, 16),
    (1, 1, 5, 37, 24),
    (2, 2, 1, 20, 48),
    (1, 2, 20, 5, 48),  # image tokens -> few graph nodes
    (2, 1, 17, 33, 96),
]


@needs_interp
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_triton_interpreter_parity(use_backend, shape, dtype):
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, seed=sum(shape))
    check_parity(q, k, v, do, num_kv_splits=1)


@needs_interp
@pytest.mark.parametrize("splits", [2, 3, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_triton_interpreter_split_kv(use_backend, splits, dtype):
    """Split-KV forward (64 > number of key blocks: lowered so no split is empty)."""
    use_backend("triton")
    q, k, v, do = make_qkv(1, 2, 5, 37, 24, dtype=dtype, seed=splits)
    out, grads = check_parity(q, k, v, do, num_kv_splits=splits)
    plain, plain_grads = run(cross_attention, q, k, v, do, num_kv_splits=1)
    torch.testing.assert_close(out, plain, rtol=0, atol=4 * torch.finfo(dtype).eps)
    for g, pg in zip(grads, plain_grads, strict=True):
        # backward reads the combined lse: agrees with the plain path's to fp32 rounding
        torch.testing.assert_close(
            g, pg, rtol=0, atol=8 * torch.finfo(dtype).eps * pg.abs().max().item()
        )


@needs_interp
def test_triton_interpreter_scale_and_auto_split(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(1, 1, 3, 40, 16, seed=7)
    check_parity(q, k, v, do, scale=0.7)  # num_kv_splits=None: the rule (1 at this Nk)


@needs_interp
def test_triton_interpreter_non_contiguous(use_backend):
    """q from a (B, L, H, Dh) projection, k/v one label graph expanded over the batch (stride
    0, as LLCD passes it), dout transposed: all strides go to the kernels."""
    use_backend("triton")
    b, h, nq, nk, dh = 2, 2, 6, 19, 24
    g = torch.Generator().manual_seed(5)
    q = torch.randn(b, nq, h, dh, generator=g).transpose(1, 2)
    kv = torch.randn(1, nk, 2, h, dh, generator=g)
    k = kv[:, :, 0].transpose(1, 2).expand(b, -1, -1, -1)
    v = kv[:, :, 1].transpose(1, 2).expand(b, -1, -1, -1)
    do = torch.randn(b, dh, h, nq, generator=g).permute(0, 2, 3, 1)
    assert not any(t.is_contiguous() for t in (q, k, v, do)) and k.stride(0) == 0
    out, grads = check_parity(q, k, v, do)
    c_out, c_grads = run(
        cross_attention, q.contiguous(), k.contiguous(), v.contiguous(), do.contiguous()
    )
    assert torch.equal(out, c_out)
    for a, c in zip(grads, c_grads, strict=True):
        assert torch.equal(a, c)


def projection_views(b, h, nq, nk, dh, dtype=torch.float32, seed=0):
    """q, k, v, do as ProjectedAttention.attend gets them: (B, L, H, Dh).transpose(1, 2) views
    of chunks of one projection buffer ((B, L, 3d) split in q, k, v when Nq == Nk; else q a
    chunk of a (B, Lq, 2d) buffer shared with another attention's slice, k and v the chunks of
    a (B, Lk, 2d) one), and do the gradient of heads.transpose(1, 2).reshape(B, Lq, d)."""
    d = h * dh
    g = torch.Generator().manual_seed(seed)

    def heads(x):
        return x.reshape(b, x.shape[1], h, dh).transpose(1, 2)

    if nq == nk:
        q, k, v = torch.randn(b, nq, 3 * d, generator=g).to(dtype).chunk(3, dim=-1)
    else:
        q = torch.randn(b, nq, 2 * d, generator=g).to(dtype).chunk(2, dim=-1)[0]
        k, v = torch.randn(b, nk, 2 * d, generator=g).to(dtype).chunk(2, dim=-1)
    do = torch.randn(b, nq, d, generator=g).to(dtype)
    return heads(q), heads(k), heads(v), heads(do)


def run_op(q, k, v, do, splits=1, dropout_p=0.0, seed=None):
    """out and (dq, dk, dv) of torch.ops.lcnet_fast.cross_attention_triton itself (no clones: the
    tensors' own strides reach the kernels)."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    args = (dropout_p, seed) if dropout_p > 0 else ()
    out = torch.ops.lcnet_fast.cross_attention_triton(
        q, k, v, 1 / math.sqrt(q.shape[-1]), splits, *args
    )[0]
    return out.detach(), torch.autograd.grad(out, (q, k, v), do)


LAYOUT_SHAPE = (2, 3, 17, 37, 24)  # B, H >= 2 and N off the block sizes: batch/head strides


@needs_interp
@pytest.mark.parametrize("dropout_p", [0.0, 0.3], ids=["nodrop", "dropout"])
@pytest.mark.parametrize("splits", [1, 3], ids=["plain", "split3"])
def test_triton_output_layout_is_bnhd(use_backend, splits, dropout_p):
    """out and dq, dk, dv are (B, H, N, Dh) views of (B, N, H, Dh) memory (as flash SDPA
    returns), lse is (B, H, Nq) contiguous, and the fake kernels give the same strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    b, h, nq, nk, dh = LAYOUT_SHAPE
    q, k, v, do = make_qkv(*LAYOUT_SHAPE, seed=splits)
    extra = (dropout_p, seed_tensor(17)) if dropout_p > 0 else ()
    out, lse = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 0.3, splits, *extra)
    grads = torch.ops.lcnet_fast.cross_attention_triton_backward(do, q, k, v, out, lse, 0.3, *extra)
    assert out.stride() == bnhd_strides(out.shape) == (nq * h * dh, dh, h * dh, 1)
    assert lse.shape == (b, h, nq) and lse.is_contiguous() and lse.dtype == torch.float32
    for name, t, like in zip(("dq", "dk", "dv"), grads, (q, k, v), strict=True):
        assert t.shape == like.shape and t.stride() == bnhd_strides(like.shape), name
        assert_bnhd_layout(t, name)
    # and every element is where it belongs: parity with the fp64 oracle (autograd path)
    use_backend("triton")
    c_out, c_grads = check_parity(
        q,
        k,
        v,
        do,
        scale=0.3,
        num_kv_splits=splits,
        dropout_p=dropout_p,
        seed=extra[1] if extra else None,
    )
    assert torch.equal(out, c_out) and all(map(torch.equal, grads, c_grads))
    with FakeTensorMode() as mode:
        fq, fk, fv, fdo = (mode.from_tensor(t) for t in (q, k, v, do))
        fextra = (dropout_p, mode.from_tensor(extra[1])) if extra else ()
        f_out, f_lse = torch.ops.lcnet_fast.cross_attention_triton(fq, fk, fv, 0.3, splits, *fextra)
        f_grads = torch.ops.lcnet_fast.cross_attention_triton_backward(
            fdo, fq, fk, fv, f_out, f_lse, 0.3, *fextra
        )
    assert (f_out.stride(), f_lse.stride()) == (out.stride(), lse.stride())
    assert [t.stride() for t in f_grads] == [t.stride() for t in grads]


PROJECTION_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits, dropout_p
    ((2, 3, 17, 17, 24), torch.float32, 1, 0.0),  # self-attention: one (B, L, 3d) buffer
    ((2, 2, 33, 33, 20), torch.float16, 3, 0.3),
    ((2, 2, 1, 37, 48), torch.float32, 2, 0.0),  # Nq = 1
    ((3, 2, 18, 1, 24), torch.float16, 1, 0.2),  # Nk = 1
    ((1, 4, 20, 45, 33), torch.float32, 2, 0.0),  # batch 1, odd Dh
    ((2, 2, 21, 50, 96), torch.float16, 1, 0.0),  # the LLCD's Dh
]


@needs_interp
@pytest.mark.parametrize(
    "shape,dtype,splits,p",
    PROJECTION_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}-p{c[3]}" for c in PROJECTION_CASES],
)
def test_triton_interpreter_projection_views(use_backend, shape, dtype, splits, p):
    """The model's real inputs: q, k, v strided slices of projection buffers, dout strided
    like the merged-heads gradient. Parity against fp64 (check_parity's clones are dense, in
    the views' dimension order), and the views themselves (run_op: no clone) give bit-equal
    results, as do contiguous inputs."""
    use_backend("triton")
    q, k, v, do = projection_views(*shape, dtype=dtype, seed=sum(shape))
    assert not any(t.is_contiguous() for t in (q, k, v, do) if t.shape[2] > 1)
    seed = seed_tensor(99 + sum(shape)) if p > 0 else None
    p_out, p_grads = check_parity(q, k, v, do, num_kv_splits=splits, dropout_p=p, seed=seed)
    out, grads = run_op(q, k, v, do, splits, p, seed)
    c_out, c_grads = run_op(*(t.contiguous() for t in (q, k, v, do)), splits, p, seed)
    assert_bnhd_layout(out)
    assert torch.equal(out, p_out) and torch.equal(out, c_out)
    for name, a, pg, c in zip(("dq", "dk", "dv"), grads, p_grads, c_grads, strict=True):
        assert_bnhd_layout(a, name)
        assert torch.equal(a, pg) and torch.equal(a, c), name


@needs_interp
def test_triton_interpreter_attend_merges_heads_without_copy(use_backend):
    """ProjectedAttention.attend's heads.transpose(1, 2).reshape(B, L, d) before out_proj is a
    view of the op's output on the Triton path (a contiguous output would need a copy)."""
    from lcnet_fast.models.attention import KEY, QUERY, VALUE, ProjectedAttention, project

    use_backend("triton")
    torch.manual_seed(0)
    attention = ProjectedAttention(48, 2, dropout=0.0).eval()
    x, y = torch.randn(2, 7, 48), torch.randn(2, 19, 48, requires_grad=True)
    seen = []
    attention.out_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    (q,) = project(x, [(attention, QUERY)])
    k, v = project(y, [(attention, KEY), (attention, VALUE)])
    out = attention.attend(q, k, v)
    merged = seen[0]
    assert merged.shape == (2, 7, 48) and merged._is_view()
    assert merged.stride() == (7 * 48, 48, 1)  # a plain (B, L, d) tensor, no copy made
    ref = attention.attend(q, k, v, need_weights=True)[0]
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert y.grad is not None and y.grad.isfinite().all()


@needs_interp
def test_triton_interpreter_empty(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(0, 2, 5, 7, 16)
    out, grads = run(cross_attention, q, k, v, do)
    assert out.shape == (0, 2, 5, 16) and [tuple(x.shape) for x in grads] == [
        (0, 2, 5, 16),
        (0, 2, 7, 16),
        (0, 2, 7, 16),
    ]
    q, k, v, do = make_qkv(1, 2, 0, 7, 16)
    out, (dq, dk, dv) = run(cross_attention, q, k, v, do)
    assert out.shape == (1, 2, 0, 16) and not dk.any() and not dv.any()


# --- attention dropout inside the Triton kernels ---------------------------------------------

DROPOUT_CASES = [  # (B, H, Nq, Nk, Dh), dropout_p, num_kv_splits
    ((1, 1, 1, 1, 16), 0.5, 1),
    ((1, 2, 5, 37, 24), 0.1, 1),
    ((2, 1, 17, 33, 20), 0.5, 1),
    ((1, 2, 5, 37, 24), 0.3, 3),  # split-KV: each split draws only its own keys' numbers
    ((1, 2, 20, 5, 48), 0.9, 1),  # image tokens -> few graph nodes, most dropped
]


def seed_tensor(value, device="cpu"):
    return torch.tensor([value], dtype=torch.int64, device=device)


@needs_interp
@pytest.mark.parametrize(
    "shape,p,splits",
    DROPOUT_CASES,
    ids=["x".join(map(str, c[0])) + f"-p{c[1]}-s{c[2]}" for c in DROPOUT_CASES],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_triton_interpreter_dropout_parity(use_backend, shape, p, splits, dtype):
    """Forward and backward against (softmax(q k^T s) * keep / (1-p)) v with the kernels'
    own mask: exact, so a wrong mask, scale or gradient rule fails by far more than rounding."""
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, seed=sum(shape))
    check_parity(
        q, k, v, do, dropout_p=p, seed=seed_tensor(987654321 + sum(shape)), num_kv_splits=splits
    )


@needs_interp
def test_triton_dropout_mask_statistics():
    """The mask the kernels use keeps a 1-p fraction, differs per head, batch and seed (the
    parity tests cannot see a mask that is consistently wrong, e.g. all kept)."""
    from cross_attention_keep_mask import dropout_keep_mask  # tests/ops

    p, shape = 0.3, (2, 3, 50, 70)
    keep = dropout_keep_mask(seed_tensor(2024), *shape, p)
    assert keep.shape == shape and keep.dtype == torch.bool
    n = keep.numel()
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(keep.float().mean().item() - (1 - p)) < 5 * sd
    assert not torch.equal(keep[0, 0], keep[0, 1]) and not torch.equal(keep[0], keep[1])
    other = dropout_keep_mask(seed_tensor(2025), *shape, p)
    agree = (keep == other).float().mean().item()  # independent masks: (1-p)^2 + p^2
    assert abs(agree - ((1 - p) ** 2 + p**2)) < 5 * math.sqrt(0.25 / n)
    assert torch.equal(keep, dropout_keep_mask(seed_tensor(2024), *shape, p))


@needs_interp
def test_triton_dropout_seed_comes_from_torch_rng(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(1, 2, 5, 37, 24)
    torch.manual_seed(11)
    first = cross_attention(q, k, v, dropout_p=0.4)
    torch.manual_seed(11)
    again = cross_attention(q, k, v, dropout_p=0.4)
    later = cross_attention(q, k, v, dropout_p=0.4)
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert not torch.allclose(first, cross_attention(q, k, v))
    torch.manual_seed(11)  # the public function draws one int64 seed from torch's RNG
    seed = torch.randint(2**62, (1,), dtype=torch.int64)
    expected = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 1 / math.sqrt(24), 1, 0.4, seed)
    assert torch.equal(first, expected[0])


@needs_interp
def test_triton_dropout_needs_a_seed():
    q, k, v, _ = make_qkv(1, 1, 2, 3, 16)
    op = torch.ops.lcnet_fast.cross_attention_triton
    for seed in (None, torch.tensor([1], dtype=torch.int32), torch.tensor([1, 2])):
        with pytest.raises(RuntimeError, match="needs seed, an int64 tensor of one element"):
            op(q, k, v, 0.25, 1, 0.3, seed)
    with pytest.raises(RuntimeError, match="dropout_p must be in \\[0, 1\\)"):
        op(q, k, v, 0.25, 1, 1.0, seed_tensor(1))


@pytest.fixture
def gpu_block_configs(monkeypatch):
    """The interpreter launches with the block sizes and warps of a GPU launch."""
    import lcnet_fast.ops.triton.cross_attention_config as config

    fwd, bwd = config.fwd_config, config.bwd_config
    monkeypatch.setattr(config, "fwd_config", lambda bd, dt, _device: fwd(bd, dt, "cuda"))
    monkeypatch.setattr(config, "bwd_config", lambda bd, dt, _device: bwd(bd, dt, "cuda"))
    assert config.fwd_config(128, torch.float16, "cpu")["BLOCK_M"] == 64  # patched: GPU sizes


GPU_CONFIG_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits, dropout_p
    ((1, 2, 70, 200, 96), torch.float32, 1, 0.0),  # BLOCK_D 128: fp32 takes 32 x 16 blocks
    ((1, 2, 70, 200, 96), torch.float16, 3, 0.0),
    ((2, 1, 5, 130, 24), torch.float32, 2, 0.2),
    ((1, 1, 33, 65, 256), torch.float32, 1, 0.0),  # the widest head: BLOCK_N 16
    ((1, 1, 33, 65, 200), torch.float16, 2, 0.3),
    ((1, 2, 130, 20, 48), torch.float16, None, 0.1),  # image tokens -> nodes: 3 query blocks
]


@needs_interp
@pytest.mark.parametrize(
    "shape,dtype,splits,p",
    GPU_CONFIG_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}-p{c[3]}" for c in GPU_CONFIG_CASES],
)
def test_triton_interpreter_with_gpu_block_configs(
    use_backend, gpu_block_configs, shape, dtype, splits, p
):
    """The block sizes the GPU launches use (32- and 64-row query blocks, BLOCK_N 16..64,
    backward OWN/STEP pairs), run in the interpreter: masking and split layouts at the real
    tile sizes are checked here on every CI run, not only on a GPU machine."""
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, seed=sum(shape))
    check_parity(q, k, v, do, num_kv_splits=splits, dropout_p=p, seed=seed_tensor(3))


@needs_interp
@pytest.mark.parametrize(
    "shape,dtype,splits,p",
    [
        ((2, 2, 70, 70, 48), torch.float16, 1, 0.1),  # one (B, L, 3d) buffer, 2 query blocks
        ((2, 3, 5, 130, 24), torch.float32, 2, 0.0),
    ],
    ids=["2x2x70x70x48-float16-s1-p0.1", "2x3x5x130x24-float32-s2-p0.0"],
)
def test_triton_interpreter_projection_views_with_gpu_block_configs(
    use_backend, gpu_block_configs, shape, dtype, splits, p
):
    """The model's strided inputs and (B, N, H, Dh) outputs at the GPU tile sizes."""
    use_backend("triton")
    q, k, v, do = projection_views(*shape, dtype=dtype, seed=sum(shape))
    seed = seed_tensor(4) if p > 0 else None
    p_out, p_grads = check_parity(q, k, v, do, num_kv_splits=splits, dropout_p=p, seed=seed)
    out, grads = run_op(q, k, v, do, splits, p, seed)  # the views themselves, not clones
    assert torch.equal(out, p_out) and all(map(torch.equal, grads, p_grads))


@needs_interp
def test_triton_interpreter_opcheck(use_backend):
    # test_faketensor compares the fake kernels' output strides with the real ones'
    utils = ("test_schema", "test_faketensor", "test_autograd_registration")
    for inputs in (make_qkv(1, 2, 3, 18, 24), projection_views(2, 3, 17, 21, 20)):
        q, k, v, do = (t.detach() for t in inputs)
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        for splits in (1, 2):
            torch.library.opcheck(
                torch.ops.lcnet_fast.cross_attention_triton.default,
                (q, k, v, 0.25, splits),
                test_utils=utils,
            )
            torch.library.opcheck(
                torch.ops.lcnet_fast.cross_attention_triton.default,
                (q, k, v, 0.25, splits, 0.3, seed_tensor(5)),
                test_utils=utils,
            )
        out, lse = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 0.25, 1)
        torch.library.opcheck(
            torch.ops.lcnet_fast.cross_attention_triton_backward.default,
            (do, q.detach(), k.detach(), v.detach(), out.detach(), lse, 0.25),
            test_utils=("test_schema", "test_faketensor"),
        )
        torch.library.opcheck(
            torch.ops.lcnet_fast.cross_attention_triton_backward.default,
            (do, q.detach(), k.detach(), v.detach(), out.detach(), lse, 0.25, 0.3, seed_tensor(5)),
            test_utils=("test_schema", "test_faketensor"),
        )
        expected_lse = torch.logsumexp(q.double() @ k.double().transpose(-1, -2) * 0.25, -1)
        torch.testing.assert_close(lse.double(), expected_lse, rtol=0, atol=1e-5)


@needs_interp
@pytest.mark.parametrize("dropout_p", [0.0, 0.3], ids=["nodrop", "dropout"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_triton_interpreter_compile_fullgraph(use_backend, dynamic, dropout_p):
    """Dynamo traces the Triton path (lazy import, backend rules) without graph breaks, forward
    and backward. backend "eager": AOT tracing of a triton_op runs the interpreter on fake
    tensors, which fails (interpreter-only; the GPU test compiles with inductor)."""
    use_backend("triton")
    q, k, v, do = make_qkv(1, 2, 5, 21, 24)
    f = torch.compile(
        lambda a, b, c, p: cross_attention(a, b, c, dropout_p=p) * 2,
        fullgraph=True,
        backend="eager",
        dynamic=dynamic,
    )
    torch.manual_seed(4)  # the dropout seed is drawn inside the graph, in eager's order
    out, grads = run(f, q, k, v, do, p=dropout_p)
    torch.manual_seed(4)
    e_out, e_grads = run(cross_attention, q, k, v, do, dropout_p=dropout_p)
    torch.testing.assert_close(out, e_out * 2)
    for name, a, e in zip(("dq", "dk", "dv"), grads, e_grads, strict=True):
        torch.testing.assert_close(a, 2 * e)
        assert_bnhd_layout(a, name)
    assert_bnhd_layout(out)  # out * 2 keeps the op's (B, N, H, Dh) memory order


@needs_interp
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)
@given(
    b=st.integers(1, 2),
    h=st.integers(1, 2),
    nq=st.integers(1, 20),
    nk=st.integers(1, 40),
    dh=st.sampled_from([8, 16, 20, 33, 64]),
    splits=st.integers(1, 3),
    dropout_p=st.sampled_from([0.0, 0.0, 0.2, 0.6]),
    seed=st.integers(0, 2**16),
)
def test_triton_interpreter_fuzz(b, h, nq, nk, dh, splits, dropout_p, seed):
    os.environ[_backend.ENV_VAR] = "triton"
    try:
        q, k, v, do = make_qkv(b, h, nq, nk, dh, seed=seed)
        check_parity(q, k, v, do, num_kv_splits=splits, dropout_p=dropout_p, seed=seed_tensor(seed))
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


# --- GPU (run by benchmarks/gpu_check.sh) ----------------------------------------------------

BF16, FP16, FP32 = torch.bfloat16, torch.float16, torch.float32
GPU_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits; kept small: each new Dh/dtype compiles
    ((1, 1, 1, 1, 16), BF16, None),
    ((2, 3, 5, 37, 24), BF16, 1),
    ((2, 3, 5, 37, 24), BF16, 4),
    ((2, 8, 80, 1960, 96), BF16, None),  # LLCD labels -> image tokens (plain by the rule)
    ((2, 8, 80, 1960, 96), BF16, 4),
    ((2, 8, 1960, 80, 96), BF16, None),  # image tokens -> graph nodes
    ((1, 8, 80, 1960, 96), BF16, None),  # single-image inference (split-KV by the rule)
    ((1, 2, 33, 300, 256), BF16, None),
    ((3, 2, 70, 129, 48), BF16, 2),
    ((2, 3, 5, 37, 24), FP16, 1),
    ((1, 8, 80, 1960, 96), FP16, None),
    ((2, 3, 5, 37, 24), FP32, 3),
    ((3, 2, 70, 129, 48), FP32, 1),
    ((1, 2, 33, 300, 256), FP32, None),
]


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    "shape,dtype,splits",
    GPU_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}" for c in GPU_CASES],
)
def test_gpu_parity(use_backend, shape, dtype, splits):
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, device="cuda", seed=sum(shape))
    check_parity(q, k, v, do, num_kv_splits=splits)


@gpu
@pytest.mark.gpu
def test_gpu_auto_is_triton_and_non_contiguous(use_backend):
    use_backend("auto")
    assert choose_backend("cuda", str(torch.bfloat16)) == "triton"
    b, h, nq, nk, dh = 4, 8, 80, 500, 96
    x = torch.randn(b, nq, h, dh, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(1, nk, h, dh, device="cuda", dtype=torch.bfloat16)
    k = kv.transpose(1, 2).expand(b, -1, -1, -1)
    do = torch.randn(b, h, nq, dh, device="cuda", dtype=torch.bfloat16)
    check_parity(x.transpose(1, 2), k, k, do)


@gpu
@pytest.mark.gpu
def test_gpu_opcheck_and_compile(use_backend):
    use_backend("triton")
    q, k, v, do = make_qkv(2, 2, 17, 70, 48, dtype=torch.float16, device="cuda")
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    for splits in (1, 3):
        torch.library.opcheck(
            torch.ops.lcnet_fast.cross_attention_triton.default, (q, k, v, 0.2, splits)
        )
    f = torch.compile(lambda a, b, c: cross_attention(a, b, c), fullgraph=True)
    out, grads = run(f, q, k, v, do)
    e_out, e_grads = run(cross_attention, q, k, v, do)
    torch.testing.assert_close(out, e_out)
    for a, e in zip(grads, e_grads, strict=True):
        torch.testing.assert_close(a, e)


GPU_DROPOUT_CASES = [  # (B, H, Nq, Nk, Dh), dtype, num_kv_splits, dropout_p
    ((2, 3, 5, 37, 24), BF16, 1, 0.5),
    ((2, 8, 80, 1960, 96), BF16, None, 0.1),  # LLCD training: labels -> image tokens
    ((2, 8, 1960, 80, 96), BF16, None, 0.1),  # image tokens -> graph nodes
    ((1, 8, 80, 1960, 96), BF16, None, 0.1),  # split-KV by the rule
    ((3, 2, 70, 129, 48), FP32, 2, 0.3),
]


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    "shape,dtype,splits,p",
    GPU_DROPOUT_CASES,
    ids=["x".join(map(str, c[0])) + f"-{str(c[1])[6:]}-s{c[2]}-p{c[3]}" for c in GPU_DROPOUT_CASES],
)
def test_gpu_dropout_parity(use_backend, shape, dtype, splits, p):
    use_backend("triton")
    q, k, v, do = make_qkv(*shape, dtype=dtype, device="cuda", seed=sum(shape))
    check_parity(
        q, k, v, do, dropout_p=p, seed=seed_tensor(7 + sum(shape), "cuda"), num_kv_splits=splits
    )


@gpu
@pytest.mark.gpu
def test_gpu_auto_dropout_is_triton(use_backend):
    """auto on CUDA trains through the Triton kernels: the seed drawn from torch's CUDA RNG
    reproduces the output exactly, and the mask is not SDPA's."""
    use_backend("auto")
    q, k, v, _ = make_qkv(2, 8, 80, 500, 96, dtype=torch.bfloat16, device="cuda")
    torch.manual_seed(2)
    out = cross_attention(q, k, v, dropout_p=0.1)
    torch.manual_seed(2)
    seed = torch.randint(2**62, (1,), dtype=torch.int64, device="cuda")
    expected = torch.ops.lcnet_fast.cross_attention_triton(q, k, v, 1 / math.sqrt(96), 1, 0.1, seed)
    assert torch.equal(out, expected[0])
