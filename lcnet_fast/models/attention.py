"""Multi-head attention with nn.MultiheadAttention's parameter layout, computed by SDPA.

The parameters are named exactly like nn.MultiheadAttention's (in_proj_weight (3d, d) = [W_q; W_k;
W_v], in_proj_bias (3d,), out_proj), so a reference checkpoint loads with strict=True. The module
does not project its inputs itself: the LLCD layer gathers the slices of several attentions that
read the same tensor into one matmul (`project`), then calls `attend` on ready heads, which runs
the `lcnet_fast::cross_attention` op (FlashAttention-style Triton kernels on GPU, attention
dropout included; SDPA on CPU; see lcnet_fast/ops/cross_attention.py).
"""

import torch
import torch.nn.functional as F
from torch import nn

from lcnet_fast.ops.cross_attention import cross_attention

QUERY, KEY, VALUE = 0, 1, 2


def feed_forward(d_model: int, dim_feedforward: int, dropout: float) -> nn.Sequential:
    """The FFN of the GAT and LLCD layers: Linear -> ReLU -> Dropout -> Linear (state-dict keys
    .0 and .3, as the reference checkpoints have them)."""
    return nn.Sequential(
        nn.Linear(d_model, dim_feedforward),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(dim_feedforward, d_model),
    )


class ProjectedAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.d_model, self.num_heads, self.dropout = d_model, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)

    def weight(self, part: int) -> torch.Tensor:
        return self.in_proj_weight[part * self.d_model : (part + 1) * self.d_model]

    def bias(self, part: int) -> torch.Tensor:
        return self.in_proj_bias[part * self.d_model : (part + 1) * self.d_model]

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, H, L, d/H)."""
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, -1).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, need_weights: bool = False):
        """Projected (B, L, d) inputs -> out_proj(softmax(q k^T / sqrt(dh)) v), (B, Lq, d).

        need_weights=True (opt-in, for attention maps) computes the attention matrix explicitly
        instead of calling the fused op and returns (output, weights (B, H, Lq, Lk)), the
        per-head softmax(q k^T / sqrt(dh)) before dropout, as nn.MultiheadAttention reports them.
        """
        dropout_p = self.dropout if self.training else 0.0
        qh, kh, vh = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        weights = None
        if need_weights:
            scores = torch.matmul(qh, kh.transpose(-2, -1)) * (qh.shape[-1] ** -0.5)
            weights = torch.softmax(scores.float(), dim=-1).to(qh.dtype)
            heads = torch.matmul(F.dropout(weights, dropout_p, training=dropout_p > 0), vh)
        else:
            heads = cross_attention(qh, kh, vh, dropout_p=dropout_p)
        batch, _, length, _ = heads.shape
        # a view, no copy, on the Triton path: the op returns (B, Lq, H, Dh) memory
        out = self.out_proj(heads.transpose(1, 2).reshape(batch, length, self.d_model))
        return (out, weights) if need_weights else out


def project(x: torch.Tensor, parts: list[tuple[ProjectedAttention, int]]) -> list[torch.Tensor]:
    """Apply several attentions' projection slices that share the input x as ONE matmul.

    parts: [(attention, QUERY|KEY|VALUE), ...]; returns one (..., d) tensor per part, in order.
    If x is the same for every image of the batch (stride 0 on the batch dim, e.g. the label graph),
    the matmul runs on one row of the batch and the result is broadcast: image-independent work is
    done once per batch.
    """
    weight = torch.cat([attention.weight(part) for attention, part in parts])
    bias = torch.cat([attention.bias(part) for attention, part in parts])
    out = once_per_batch(x, lambda rows: F.linear(rows, weight, bias))
    return list(out.chunk(len(parts), dim=-1))


def once_per_batch(x: torch.Tensor, fn):
    """fn(x) computed on one image when x is the same for every image (stride-0 batch dim),
    then broadcast again; fn(x) otherwise. fn must map (B, ...) to (B, ...) image by image."""
    if is_batch_broadcast(x):
        out = fn(x[:1])
        return out.expand(x.shape[0], *out.shape[1:])
    return fn(x)


def is_batch_broadcast(x: torch.Tensor) -> bool:
    """True for a (B, L, d) tensor that is one (L, d) tensor expanded over the batch."""
    return x.dim() == 3 and x.shape[0] > 1 and x.stride(0) == 0
