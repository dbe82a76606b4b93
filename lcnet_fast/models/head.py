"""Per-class linear head: one linear classifier per label token."""

import torch
from torch import nn


class PerClassLinear(nn.Module):
    """logit[b, n] = <q[b, n, :], weight[n, :]> + bias[n]."""

    def __init__(self, num_classes: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, d_model))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.normal_(self.weight, std=d_model**-0.5)

    def forward(self, label_tokens: torch.Tensor) -> torch.Tensor:
        return (
            torch.einsum("bnd,nd->bn", label_tokens, self.weight.to(label_tokens.dtype)) + self.bias
        )
