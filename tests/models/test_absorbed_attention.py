"""The absorbed LLCD attentions equal the projected ones: values, gradients, dropout, the rule."""

import pytest
import torch
import torch.nn.functional as F

from lcnet_fast.models.absorbed_attention import (
    absorbs,
    attention_dropout,
    long_query_attention,
    short_query_attention,
    work_ratio,
)
from lcnet_fast.models.attention import ProjectedAttention

SHAPES = [  # (batch, short N, long T, d_model, heads): odd sizes, one label, one image
    (1, 1, 7, 24, 3),
    (3, 5, 33, 24, 3),
    (2, 7, 13, 30, 5),
    (4, 1, 1, 8, 1),
]


def attention_module(d, heads, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    module = ProjectedAttention(d, heads, dropout).double()
    with torch.no_grad():  # non-zero biases: the absorbed form treats each bias differently
        module.in_proj_bias.normal_()
        module.out_proj.bias.normal_()
    return module


def projected(module, queries, keys):
    """nn.MultiheadAttention's computation: project both sides, attend per head, out_proj."""
    q = F.linear(queries, module.weight(0), module.bias(0))
    k = F.linear(keys, module.weight(1), module.bias(1))
    v = F.linear(keys, module.weight(2), module.bias(2))
    heads = F.scaled_dot_product_attention(
        module.split_heads(q), module.split_heads(k), module.split_heads(v)
    )
    batch, _, length, _ = heads.shape
    return module.out_proj(heads.transpose(1, 2).reshape(batch, length, module.d_model))


def tensors(batch, short, long, d, broadcast, seed=1):
    """(short side, long side x, leaves to differentiate): a broadcast short side is one
    (1, N, d) leaf expanded over the batch, as the model passes image-independent inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, long, d, generator=g, dtype=torch.float64).requires_grad_()
    base = torch.randn(1 if broadcast else batch, short, d, generator=g, dtype=torch.float64)
    base.requires_grad_()
    return base.expand(batch, -1, -1), x, (base, x)


def assert_same_values_and_gradients(module, absorbed_fn, reference_fn, inputs):
    out = absorbed_fn()
    expected = reference_fn()
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    weight = torch.randn_like(out)
    sources = [*inputs, *module.parameters()]
    grads = torch.autograd.grad((out * weight).sum(), sources, allow_unused=True)
    expected_grads = torch.autograd.grad((expected * weight).sum(), sources, allow_unused=True)
    for got, want in zip(grads, expected_grads, strict=True):
        got = torch.zeros_like(want) if got is None else got  # b_k: softmax cancels it
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("long_side", ["keys", "queries"])
@pytest.mark.parametrize("broadcast", [False, True])
@pytest.mark.parametrize("batch,short,long,d,heads", SHAPES)
def test_absorbed_attention_matches_projected(batch, short, long, d, heads, broadcast, long_side):
    """Short queries over long keys/values (MHA2, MHA3) and long queries over short keys/values
    (MHA1, MHA4), the short side per image or one expanded (1, N, d) tensor."""
    module = attention_module(d, heads)
    s, x, leaves = tensors(batch, short, long, d, broadcast and batch > 1)
    if long_side == "keys":
        absorbed, queries, keys = (lambda: short_query_attention(module, s, x)), s, x
    else:
        absorbed, queries, keys = (lambda: long_query_attention(module, x, s)), x, s
    assert_same_values_and_gradients(
        module, absorbed, lambda: projected(module, queries, keys), leaves
    )


def dropped_projected(module, queries, keys, p, layout):
    """projected() with attention dropout, the probabilities laid out as the absorbed form
    draws its mask: (B, H, Nq, Nk) for short queries, (B, Nq, H, Nk) for long ones, so one
    seed gives both the same mask."""
    q = module.split_heads(F.linear(queries, module.weight(0), module.bias(0)))
    k = module.split_heads(F.linear(keys, module.weight(1), module.bias(1)))
    v = module.split_heads(F.linear(keys, module.weight(2), module.bias(2)))
    probs = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1)
    if layout == "long":
        probs = attention_dropout(probs.transpose(1, 2).contiguous(), p).transpose(1, 2)
    else:
        probs = attention_dropout(probs.contiguous(), p)
    heads = probs @ v
    batch, _, length, _ = heads.shape
    return module.out_proj(heads.transpose(1, 2).reshape(batch, length, module.d_model))


def test_attention_dropout_is_dropout():
    """Kept probabilities scaled by 1/(1-p), a fraction p dropped (to within 5 sigma)."""
    torch.manual_seed(0)
    p, probs = 0.3, torch.rand(200, 500, dtype=torch.float64)
    out = attention_dropout(probs, p)
    kept = out != 0
    torch.testing.assert_close(out[kept], probs[kept] / (1 - p))
    sigma = (p * (1 - p) / probs.numel()) ** 0.5
    assert abs((~kept).double().mean().item() - p) < 5 * sigma


@pytest.mark.parametrize("layout", ["short", "long"])
def test_attention_dropout_drops_the_same_probabilities(layout):
    """Train mode: the absorbed form drops attention probabilities exactly as the projected form
    does (same mask for the same RNG state), including the value bias of the dropped rows."""
    p = 0.4
    module = attention_module(24, 3, dropout=p).train()
    short, x, leaves = tensors(3, 5, 17, 24, broadcast=False)
    queries, keys = (short, x) if layout == "short" else (x, short)

    def absorbed():
        torch.manual_seed(7)
        if layout == "short":
            return short_query_attention(module, short, x)
        return long_query_attention(module, x, short)

    def reference():
        torch.manual_seed(7)
        return dropped_projected(module, queries, keys, p, layout)

    assert_same_values_and_gradients(module, absorbed, reference, leaves)
    torch.manual_seed(8)  # another draw drops other probabilities: dropout is really on
    other = short_query_attention(module, short, x) if layout == "short" else None
    other = long_query_attention(module, x, short) if other is None else other
    assert not torch.allclose(other, absorbed())


def test_work_ratio_counts_multiply_adds():
    heads, n, t, d = 8, 20, 320, 256
    projected_work = t * d * d + t * n * d  # long-side projection + scores (per half)
    absorbed_work = t * heads * n * d + n * d * d  # absorbed product + the per-head fold
    assert work_ratio(heads, n, t, d) == pytest.approx(absorbed_work / projected_work)


def test_rule_absorbs_long_inputs_on_cpu_only():
    cpu = torch.device("cpu")
    assert absorbs(8, 20, 320, 256, cpu)  # issue 13's decoder shape
    assert absorbs(8, 80, 980, 768, cpu)  # paper width, long image side
    assert not absorbs(4, 10, 20, 128, cpu)  # the main job: few tokens, folds do not pay
    assert not absorbs(8, 80, 320, 256, cpu)  # H*N > d: more work absorbed
    assert not absorbs(8, 20, 320, 256, torch.device("cuda"))  # GPU keeps the fused kernels
    assert not absorbs(8, 20, 0, 256, cpu)
