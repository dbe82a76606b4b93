"""The learnable label-correlation graph + Graph Attention Transformer (fast path).

Same parameters and maths as lcnet_reference.LabelGraph: node features are the projected label
embeddings; each GAT layer is multi-head self-attention over the N label nodes with the learnable
correlation matrix A (N, N) as an additive score bias, then an FFN, each with a residual and
LayerNorm. The graph does not depend on the image, so the model runs it once per forward (not once
per image) and broadcasts its (N, d) output over the batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lcnet_fast.models.attention import (
    KEY,
    QUERY,
    VALUE,
    ProjectedAttention,
    feed_forward,
    project,
)


class GATLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.attention = ProjectedAttention(d_model, num_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = feed_forward(d_model, dim_feedforward, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, correlation: torch.Tensor) -> torch.Tensor:
        """nodes (N, d), correlation (N, N) -> (N, d)."""
        attention = self.attention
        x = nodes.unsqueeze(0)
        q, k, v = project(x, [(attention, QUERY), (attention, KEY), (attention, VALUE)])
        heads = F.scaled_dot_product_attention(
            attention.split_heads(q),
            attention.split_heads(k),
            attention.split_heads(v),
            attn_mask=correlation.to(q.dtype),
            dropout_p=attention.dropout if self.training else 0.0,
        )
        mixed = attention.out_proj(heads.transpose(1, 2).reshape_as(x))[0]
        nodes = self.norm1(nodes + self.dropout(mixed))
        return self.norm2(nodes + self.dropout(self.ffn(nodes)))


class LabelGraph(nn.Module):
    """Label embeddings -> (N, d_model) graph nodes; use_graph=False is the "no graph" ablation."""

    def __init__(
        self,
        num_classes: int,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float,
        num_gat_layers: int = 1,
        label_embeddings: torch.Tensor | None = None,
        correlation: torch.Tensor | None = None,
        use_graph: bool = True,
    ):
        super().__init__()
        if label_embeddings is None:
            label_embeddings = torch.eye(num_classes)
        label_embeddings = torch.as_tensor(label_embeddings, dtype=torch.float32)
        if label_embeddings.dim() != 2 or label_embeddings.shape[0] != num_classes:
            raise ValueError(
                f"label_embeddings must be (num_classes={num_classes}, E), "
                f"got {tuple(label_embeddings.shape)}"
            )
        self.use_graph = use_graph
        self.register_buffer("label_embeddings", label_embeddings.clone())
        self.node_proj = nn.Linear(label_embeddings.shape[1], d_model)
        if use_graph:
            if correlation is None:  # cosine similarity of the label embeddings
                unit = F.normalize(label_embeddings, dim=-1)
                correlation = unit @ unit.T
            correlation = torch.as_tensor(correlation, dtype=torch.float32)
            if correlation.shape != (num_classes, num_classes):
                raise ValueError(
                    f"correlation must be ({num_classes}, {num_classes}), "
                    f"got {tuple(correlation.shape)}"
                )
            self.correlation = nn.Parameter(correlation.clone())
            self.gat = nn.ModuleList(
                GATLayer(d_model, num_heads, dim_feedforward, dropout)
                for _ in range(num_gat_layers)
            )

    def forward(self) -> torch.Tensor:
        nodes = self.node_proj(self.label_embeddings)
        if self.use_graph:
            for layer in self.gat:
                nodes = layer(nodes, self.correlation)
        return nodes
