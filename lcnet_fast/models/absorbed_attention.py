"""LLCD attention with the long side's projections folded into the short side ("absorbed").

Every attention of the LLCD layer has one short side (the N label queries or graph nodes) and one
long side (the T image tokens, T >> N on real inputs). Computed as written, each attention
projects the long side with d x d weights: 2 T d^2 multiply-adds (the query or key/value
projection and, for a long-query attention, the output projection) plus 2 T N d for the scores
and the weighted sum. Matrix products associate, so the per-head projection can be moved onto the
short side instead, where it costs N d^2 once per image, and the long side then meets H*N
absorbed vectors of width d: 2 T (H N) d. Same function (to float rounding), same parameters.

Short queries over long keys/values X (MHA2: label queries over INT2, MHA3: graph nodes over the
image tokens); for head h with W_k,h, W_v,h the (dh, d) row blocks of W_k, W_v:
    q_h k_t^T   = (q_h W_k,h) x_t^T + q_h b_k,h       (the last term is the same for every key t,
                                                       so softmax cancels it: b_k drops out)
    sum_t p_t v_t = (sum_t p_t x_t) W_v,h^T + (sum_t p_t) b_v,h
The second sum is 1 without dropout; with attention dropout the kept row sum is carried along.

Long queries X over short keys/values (MHA1: image tokens over the graph nodes, MHA4: INT2 over
INT5); with W_q,h the (dh, d) row block of W_q and W_o,h the (d, dh) column block of out_proj:
    (x W_q,h^T + b_q,h) k_n^T = x (k_n W_q,h)^T + b_q,h k_n^T
    out = sum_h sum_n p_hn v_hn W_o,h^T + b_o = P [v_hn W_o,h^T]_(h,n) + b_o
so the scores are one (T, d) x (d, H N) product, the softmax runs per head over its N columns,
and the output projection is folded into the values.

Work: 2 T (H N) d + 2 N d^2 (the folds) against 2 T d^2 + 2 T N d (`work_ratio`). Fewer
multiply-adds is not enough at small shapes, where the folds are many small products; `absorbs`
holds the rule measured on CPU. CPU only: on CUDA the LLCD keeps the fused Triton
cross_attention kernels, which this form has not been measured against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lcnet_fast.models.attention import (
    KEY,
    QUERY,
    VALUE,
    ProjectedAttention,
    is_batch_broadcast,
    once_per_batch,
    project,
)
from lcnet_fast.ops.dropout_add_layer_norm import make_keep_mask

#: Absorb when it needs at most this fraction of the projected form's multiply-adds ...
ABSORB_MAX_WORK = 0.70
#: ... or at most this fraction once the long side has LONG_MIN_TOKENS tokens: below that the
#: per-head folds' small products and their fixed costs eat the saving (BENCHMARKS.md, LLCD).
ABSORB_MAX_WORK_LONG, LONG_MIN_TOKENS = 0.85, 256


def work_ratio(num_heads: int, short: int, long: int, d_model: int) -> float:
    """Multiply-adds of one absorbed attention over those of the projected one, per image:
    (T H N d + N d^2) / (T d^2 + T N d), from the module doc (halved on both sides)."""
    d = d_model
    return (long * num_heads * short * d + short * d * d) / (long * d * (d + short))


def absorbs(num_heads: int, short: int, long: int, d_model: int, device: torch.device) -> bool:
    """Whether the LLCD layer runs its attentions absorbed: on CPU tensors, where the measured
    rule above says it is faster. (On CUDA the fused Triton kernels run; not compared.)"""
    if device.type != "cpu" or long == 0:
        return False
    ratio = work_ratio(num_heads, short, long, d_model)
    return ratio <= ABSORB_MAX_WORK or (ratio <= ABSORB_MAX_WORK_LONG and long >= LONG_MIN_TOKENS)


def attention_dropout(probs: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout on attention probabilities as F.dropout computes it (kept ones scaled by
    1/(1-p)), the keep-mask drawn by make_keep_mask: on CPU that draw costs about half of
    F.dropout's bernoulli, the larger share of dropout's time on these (B, T, H*N) tensors."""
    return probs * (make_keep_mask(probs.shape, p, probs.device) * (1.0 / (1.0 - p)))


def _heads(attention: ProjectedAttention, part: int) -> torch.Tensor:
    """The (H, dh, d) per-head row blocks of the query, key or value weight."""
    heads = attention.num_heads
    return attention.weight(part).view(heads, attention.d_model // heads, attention.d_model)


def short_query_attention(
    attention: ProjectedAttention, queries: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """attention(queries, x, x) for queries (B, N, d) over a long x (B, T, d) -> (B, N, d)."""
    batch, n, d = queries.shape
    heads = attention.num_heads
    dh = d // heads
    w_k, w_v = _heads(attention, KEY), _heads(attention, VALUE)

    def absorbed_queries(q_in):  # (b, N, d) -> (b, H*N, d): q_h W_k,h for every head
        q = F.linear(q_in, attention.weight(QUERY), attention.bias(QUERY))
        q = q.view(q.shape[0], n, heads, dh)
        return torch.einsum("bnhk,hkd->bhnd", q, w_k).reshape(q.shape[0], heads * n, d)

    q_abs = once_per_batch(queries, absorbed_queries)
    dropout_p = attention.dropout if attention.training else 0.0
    if dropout_p == 0.0:
        # one head of width d whose keys and values are both x (SDPA's fused CPU kernel)
        mixed = F.scaled_dot_product_attention(
            q_abs.unsqueeze(1), x.unsqueeze(1), x.unsqueeze(1), scale=dh**-0.5
        ).squeeze(1)
        kept = None
    else:
        probs = torch.softmax(torch.matmul(q_abs, x.transpose(1, 2)) * dh**-0.5, dim=-1)
        probs = attention_dropout(probs, dropout_p)
        mixed = torch.bmm(probs, x)  # (B, H*N, d)
        kept = probs.sum(-1)  # (B, H*N): the dropped rows no longer sum to 1
    out = torch.einsum("bhnd,hkd->bnhk", mixed.view(batch, heads, n, d), w_v)
    bias = attention.bias(VALUE).view(heads, dh)
    if kept is None:
        out = out + bias
    else:
        out = out + kept.view(batch, heads, n).transpose(1, 2).unsqueeze(-1) * bias
    return attention.out_proj(out.reshape(batch, n, d))


def long_query_attention(
    attention: ProjectedAttention, x: torch.Tensor, keys: torch.Tensor
) -> torch.Tensor:
    """attention(x, keys, keys) for a long x (B, T, d) over keys/values (B, N, d) -> (B, T, d)."""
    batch, length, d = x.shape
    n = keys.shape[1]
    heads = attention.num_heads
    dh = d // heads
    w_q = _heads(attention, QUERY)
    b_q = attention.bias(QUERY).view(heads, dh)
    w_o = attention.out_proj.weight.view(d, heads, dh)
    scale = dh**-0.5
    shared = is_batch_broadcast(keys)  # fold once, then one (B*T, d) product for the batch
    kv_in = keys[:1] if shared else keys
    k, v = (
        t.view(kv_in.shape[0], n, heads, dh)
        for t in project(kv_in, [(attention, KEY), (attention, VALUE)])
    )
    # (b, H*N, d) absorbed keys and values, (b, 1, H*N) score offsets b_q,h k_n^T
    k_abs = torch.einsum("bnhk,hkd->bhnd", k, w_q).reshape(-1, heads * n, d) * scale
    offset = torch.einsum("bnhk,hk->bhn", k, b_q).reshape(-1, 1, heads * n) * scale
    v_abs = torch.einsum("bnhk,ehk->bhne", v, w_o).reshape(-1, heads * n, d)
    if shared:
        scores = torch.addmm(offset[0], x.reshape(-1, d), k_abs[0].t())
    else:
        scores = torch.baddbmm(offset, x, k_abs.transpose(1, 2))
    probs = torch.softmax(scores.view(batch, length, heads, n), dim=-1)
    probs = probs.view(batch, length, heads * n)
    if attention.training and attention.dropout > 0.0:
        probs = attention_dropout(probs, attention.dropout)
    if shared:
        out = torch.addmm(attention.out_proj.bias, probs.view(-1, heads * n), v_abs[0])
        return out.view(batch, length, d)
    return torch.baddbmm(attention.out_proj.bias, probs, v_abs)
