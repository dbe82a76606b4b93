"""Shared helpers of the cross_attention tests (test_cross_attention*.py in this folder): inputs
(make_qkv, projection_views, seed_tensor, z), the fp64 oracle, check_parity (a backend against
PyTorch at the same dtype, both measured against the oracle), the (B, N, H, Dh) layout checks and
the skip marks. A plain module, imported by the test files (rootdir import, like
cross_attention_keep_mask.py); the fixtures use_backend and gpu_block_configs are in conftest.py.

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

import pytest
import torch

from lcnet_fast.ops import _backend, cross_attention, cross_attention_reference

HAS_CUDA = torch.cuda.is_available()
TRITON_CPU_REASON = _backend.unavailable_reason("triton", "cross_attention", "cpu")
needs_interp = pytest.mark.skipif(TRITON_CPU_REASON is not None, reason=str(TRITON_CPU_REASON))
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
LOG2E = 1 / math.log(2)
EPS32 = torch.finfo(torch.float32).eps


def choose_backend(device_type, dtype_name):
    return _backend.choose_backend("cross_attention", device_type, dtype_name)


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


def z(*shape):
    return torch.zeros(*shape)


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


def seed_tensor(value, device="cpu"):
    return torch.tensor([value], dtype=torch.int64, device=device)
