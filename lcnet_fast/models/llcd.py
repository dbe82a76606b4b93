"""The Learnable Label Correlation Decoder layer, eq. (1) of the paper, fast path.

Same maths and parameter names as lcnet_reference.LLCDLayer (see its docstring for eq. (1) and its
two readings: reading="literal" as printed, reading="residual" with INT1 and INT3 as the label
queries' residuals); what changes is how it is computed:
- projections that read the same tensor are one matmul: KV_img feeds MHA1's query and MHA3's key
  and value; KV_graph feeds MHA1's key/value and MHA3's query; INT2 feeds MHA2's key/value and
  MHA4's query; INT5 feeds MHA4's key/value;
- attention runs through the lcnet_fast::cross_attention op and every AddNorm through the fused
  lcnet_fast::dropout_add_layer_norm op (see lcnet_fast/ops); their dropout masks come from other
  draws of the RNG than nn.Dropout's, so train-mode outputs match the reference in distribution,
  not bit for bit;
- inputs that are identical for every image (the label queries and graph nodes entering the first
  layer) are normalised and projected once per batch, not once per image, when dropout cannot make
  them differ.
"""

import torch
from torch import nn

from lcnet_fast.models.absorbed_attention import (
    absorbs,
    long_query_attention,
    short_query_attention,
)
from lcnet_fast.models.attention import (
    KEY,
    QUERY,
    VALUE,
    ProjectedAttention,
    feed_forward,
    once_per_batch,
    project,
)
from lcnet_fast.ops.dropout_add_layer_norm import dropout_add_layer_norm

READINGS = ("literal", "residual")


def check_reading(reading: str) -> str:
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}, got {reading!r}")
    return reading


class LLCDLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        reading: str = "literal",
    ):
        super().__init__()
        self.reading = check_reading(reading)

        def attention() -> ProjectedAttention:
            return ProjectedAttention(d_model, num_heads, dropout)

        self.mha1, self.mha2, self.mha3, self.mha4 = (
            attention(),
            attention(),
            attention(),
            attention(),
        )
        self.norm_int1 = nn.LayerNorm(d_model)
        self.norm_int2 = nn.LayerNorm(d_model)
        self.norm_int3 = nn.LayerNorm(d_model)
        self.norm_int5 = nn.LayerNorm(d_model)
        self.norm_int6 = nn.LayerNorm(d_model)
        self.norm_out = nn.LayerNorm(d_model)
        self.mlp = feed_forward(d_model, dim_feedforward, dropout)
        self.dropout = nn.Dropout(dropout)

    def _add_norm(
        self, norm: nn.LayerNorm, x: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """AddNorm(DO(x) + residual) as one fused op (dropout mask from torch's RNG)."""
        return dropout_add_layer_norm(
            x, residual, norm.weight, norm.bias, self.dropout.p, norm.eps, training=self.training
        )

    def _int1(self, q_lbl: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout.p > 0:  # per-image masks: no longer image-independent
            return self._add_norm(self.norm_int1, q_lbl, q_lbl)
        return once_per_batch(q_lbl, lambda q: self._add_norm(self.norm_int1, q, q))

    def _queries_out(self, int1: torch.Tensor, mha2: torch.Tensor) -> torch.Tensor:
        """INT3, INT4 and Q' of eq. (1) from INT1 and MHA2: the only place the two readings
        differ (the residual one carries the label queries through INT1 and INT3)."""
        residual = self.reading == "residual"
        int3 = self._add_norm(self.norm_int3, mha2, int1 if residual else mha2)
        int4 = self.mlp(int3)
        return self._add_norm(self.norm_out, int4, int3 if residual else int4)

    def forward(
        self,
        q_lbl: torch.Tensor,
        kv_img: torch.Tensor,
        kv_graph: torch.Tensor,
        compute_kv: bool = True,
        return_attention: bool = False,
    ):
        """q_lbl (B, N, d), kv_img (B, T, d), kv_graph (B, N, d) -> the same three shapes.

        compute_kv=False returns (Q'_lbl, None, None) and skips MHA3, INT5, MHA4 and INT6: in the
        last stacked layer they do not reach the logits (the model passes False there), so their
        parameters get no gradient in the reference either.

        return_attention=True (opt-in, for attention maps) appends MHA2's attention weights, the
        label queries over the T image tokens, per head: (B, H, N, T), each row summing to 1.
        MHA2 is then computed with an explicit softmax(q k^T) instead of the fused op; the
        default path is unchanged.
        """
        for name, x in (("q_lbl", q_lbl), ("kv_img", kv_img), ("kv_graph", kv_graph)):
            if (
                x.dim() != 3
                or x.shape[0] != q_lbl.shape[0]
                or x.shape[-1] != self.norm_out.normalized_shape[0]
            ):
                raise ValueError(
                    f"{name} must be (B={q_lbl.shape[0]}, L, d_model="
                    f"{self.norm_out.normalized_shape[0]}), got {tuple(x.shape)}"
                )
        int1 = self._int1(q_lbl)
        heads, (_, n, d), t = self.mha1.num_heads, q_lbl.shape, kv_img.shape[1]
        if not return_attention and absorbs(heads, n, t, d, q_lbl.device):
            return self._absorbed(int1, kv_img, kv_graph, compute_kv)
        if compute_kv:
            q1, k3, v3 = project(kv_img, [(self.mha1, QUERY), (self.mha3, KEY), (self.mha3, VALUE)])
            k1, v1, q3 = project(
                kv_graph, [(self.mha1, KEY), (self.mha1, VALUE), (self.mha3, QUERY)]
            )
        else:
            (q1,) = project(kv_img, [(self.mha1, QUERY)])
            k1, v1 = project(kv_graph, [(self.mha1, KEY), (self.mha1, VALUE)])
        int2 = self._add_norm(self.norm_int2, self.mha1.attend(q1, k1, v1), kv_img)
        if compute_kv:
            k2, v2, q4 = project(int2, [(self.mha2, KEY), (self.mha2, VALUE), (self.mha4, QUERY)])
        else:
            k2, v2 = project(int2, [(self.mha2, KEY), (self.mha2, VALUE)])
        (q2,) = project(int1, [(self.mha2, QUERY)])
        weights = None
        if return_attention:
            mha2, weights = self.mha2.attend(q2, k2, v2, need_weights=True)
        else:
            mha2 = self.mha2.attend(q2, k2, v2)
        q_out = self._queries_out(int1, mha2)
        if not compute_kv:
            return (q_out, None, None, weights) if return_attention else (q_out, None, None)
        int5 = self._add_norm(self.norm_int5, self.mha3.attend(q3, k3, v3), kv_graph)
        k4, v4 = project(int5, [(self.mha4, KEY), (self.mha4, VALUE)])
        int6 = self._add_norm(self.norm_int6, self.mha4.attend(q4, k4, v4), int2)
        return (q_out, int6, int5, weights) if return_attention else (q_out, int6, int5)

    def _absorbed(self, int1, kv_img, kv_graph, compute_kv):
        """forward's eq. (1) with every attention in the absorbed form (absorbed_attention.py):
        the T image tokens are never projected by a d x d weight."""
        int2 = self._add_norm(
            self.norm_int2, long_query_attention(self.mha1, kv_img, kv_graph), kv_img
        )
        q_out = self._queries_out(int1, short_query_attention(self.mha2, int1, int2))
        if not compute_kv:
            return q_out, None, None
        int5 = self._add_norm(
            self.norm_int5, short_query_attention(self.mha3, kv_graph, kv_img), kv_graph
        )
        int6 = self._add_norm(self.norm_int6, long_query_attention(self.mha4, int2, int5), int2)
        return q_out, int6, int5
