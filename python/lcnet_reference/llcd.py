"""One layer of the Learnable Label Correlation Decoder, eq. (1) of the paper, line by line.

    INT1 = AddNorm(DO(Q_lbl) + Q_lbl)
    MHA1 = MHA(KV_img, KV_graph, KV_graph)
    INT2 = AddNorm(DO(MHA1) + KV_img)
    MHA2 = MHA(INT1, INT2, INT2)
    INT3 = AddNorm(DO(MHA2) + MHA2)
    INT4 = MLP(INT3)
    MHA3 = MHA(KV_graph, KV_img, KV_img)
    INT5 = AddNorm(DO(MHA3) + KV_graph)
    MHA4 = MHA(INT2, INT5, INT5)
    INT6 = AddNorm(DO(MHA4) + INT2)
    Q'_lbl = AddNorm(DO(INT4) + INT4);  KV'_img = INT6;  KV'_graph = INT5

MHA(query, key, value) is multi-head attention; AddNorm(x) is LayerNorm of the sum written inside
it.

reading="literal" is eq. (1) as printed above: INT3 and Q' add a value to itself, so no residual
path carries Q_lbl to Q'. reading="residual" is the reading of the paper's prose ("the residual
networks help with the gradient flow"), of the authors' public code and of ML-Decoder:

    INT3 = AddNorm(DO(MHA2) + INT1);  Q'_lbl = AddNorm(DO(INT4) + INT3)

Both readings have the same parameters. Every stacked layer owns its weights (the paper's public code reuses one module object for all
"stacked" layers, which silently shares them).
"""

import torch
from torch import nn


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

        def attention() -> nn.MultiheadAttention:
            return nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)

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
        self.mlp = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model),
        )
        self.dropout = nn.Dropout(dropout)

    @staticmethod
    def _mha(attention: nn.MultiheadAttention, query, key, value) -> torch.Tensor:
        return attention(query, key, value, need_weights=False)[0]

    def forward(self, q_lbl: torch.Tensor, kv_img: torch.Tensor, kv_graph: torch.Tensor):
        """q_lbl (B, N, d), kv_img (B, T, d), kv_graph (B, N, d) -> the same three shapes."""
        drop = self.dropout
        int1 = self.norm_int1(drop(q_lbl) + q_lbl)
        mha1 = self._mha(self.mha1, kv_img, kv_graph, kv_graph)
        int2 = self.norm_int2(drop(mha1) + kv_img)
        mha2 = self._mha(self.mha2, int1, int2, int2)
        residual = self.reading == "residual"
        int3 = self.norm_int3(drop(mha2) + (int1 if residual else mha2))
        int4 = self.mlp(int3)
        mha3 = self._mha(self.mha3, kv_graph, kv_img, kv_img)
        int5 = self.norm_int5(drop(mha3) + kv_graph)
        mha4 = self._mha(self.mha4, int2, int5, int5)
        int6 = self.norm_int6(drop(mha4) + int2)
        q_out = self.norm_out(drop(int4) + (int3 if residual else int4))
        return q_out, int6, int5
