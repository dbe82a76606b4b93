"""cross_attention's Triton kernels in the CPU interpreter (TRITON_INTERPRET=1 from
tests/conftest.py) against the fp64 oracle: parity over shapes and dtypes, split-KV, scale,
non-contiguous inputs and the model's real projection views, the (B, N, H, Dh) output layout
(real and fake kernels), the heads merge without a copy, empty inputs; then the same kernels
at the GPU launch block sizes (gpu_block_configs), torch.library.opcheck, torch.compile
(fullgraph) and a hypothesis fuzz over shapes, splits and dropout. Helpers and the tolerance
rule: cross_attention_helpers.py."""

import os

import pytest
import torch
from cross_attention_helpers import (  # tests/ops (rootdir import)
    assert_bnhd_layout,
    bnhd_strides,
    check_parity,
    make_qkv,
    needs_interp,
    projection_views,
    run,
    run_op,
    seed_tensor,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcnet_fast.ops import _backend, cross_attention

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


# --- Triton in the interpreter at the GPU block sizes; opcheck, compile, fuzz ----------------

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
