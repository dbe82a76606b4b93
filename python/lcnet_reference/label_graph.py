"""The learnable label-correlation graph and the Graph Attention Transformer that refines it.

Nodes are the labels. Node features come from label embeddings (one-hot by default, or any
(N, E) tensor such as word vectors). The correlation matrix A (N, N) is a learnable parameter,
initialised from the cosine similarity of the embeddings or from a given matrix (e.g. label
co-occurrence). Each GAT layer is a graph transformer layer (Dwivedi & Bresson) in which A is an
additive bias on the attention scores, so a strong correlation lets two labels attend to each other
more. The refined nodes (N, d_model) are the decoder's KV_graph input, identical for every image.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def cosine_similarity_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    normed = F.normalize(embeddings.to(torch.float32), dim=-1)
    return normed @ normed.T


class BiasedSelfAttention(nn.Module):
    """Multi-head self-attention over the nodes with the correlation matrix added to the scores.

    Parameters laid out like nn.MultiheadAttention's (in_proj_weight / in_proj_bias / out_proj),
    written out here because the bias (the learnable correlation) must receive a gradient.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, correlation: torch.Tensor) -> torch.Tensor:
        """nodes (N, d), correlation (N, N) -> (N, d)."""
        num_nodes, d_model = nodes.shape
        head_dim = d_model // self.num_heads
        q, k, v = F.linear(nodes, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (
            t.reshape(num_nodes, self.num_heads, head_dim).transpose(0, 1) for t in (q, k, v)
        )
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim) + correlation
        attention = self.dropout(scores.softmax(dim=-1))
        return self.out_proj((attention @ v).transpose(0, 1).reshape(num_nodes, d_model))


class GATLayer(nn.Module):
    """h' = LayerNorm(h + DO(attention(h; bias=A))); out = LayerNorm(h' + DO(FFN(h')))."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.attention = BiasedSelfAttention(d_model, num_heads, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, dim_feedforward),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model),
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, nodes: torch.Tensor, correlation: torch.Tensor) -> torch.Tensor:
        nodes = self.norm1(nodes + self.dropout(self.attention(nodes, correlation)))
        return self.norm2(nodes + self.dropout(self.ffn(nodes)))


class LabelGraph(nn.Module):
    """Label embeddings -> node features (N, d_model), refined by GAT layers over a learnable A.

    With use_graph=False this is the paper's "no graph" ablation: the projected label embeddings
    are returned unchanged by any graph (no correlation matrix, no GAT).
    """

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
            if correlation is None:
                correlation = cosine_similarity_matrix(label_embeddings)
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
        """-> (N, d_model) graph nodes."""
        nodes = self.node_proj(self.label_embeddings)
        if self.use_graph:
            for layer in self.gat:
                nodes = layer(nodes, self.correlation)
        return nodes
