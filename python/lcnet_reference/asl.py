"""Asymmetric Loss (Ben-Baruch, Ridnik et al., "Asymmetric Loss For Multi-Label Classification").

Per element, with p = sigmoid(logit), p_m = min(1, (1 - p) + clip) the shifted negative
probability, and y the target:
    L+ = (1 - p)^gamma_pos * log(max(p, eps))
    L- = (1 - p_m)^gamma_neg * log(max(p_m, eps))     [note 1 - p_m = max(p - clip, 0)]
    loss = -(y * L+ + (1 - y) * L-)
Targets of -1 are ignored (their elements contribute nothing). Reduction 'sum' (ASL's own
default), 'mean' (over the elements that are not ignored) or 'none'.
"""

import torch
from torch import nn


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    eps: float = 1e-8,
    reduction: str = "sum",
) -> torch.Tensor:
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape"
        )
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    valid = (targets != -1).to(logits.dtype)
    y = targets.clamp(min=0).to(logits.dtype)
    p = torch.sigmoid(logits)
    p_neg = 1 - p
    if clip is not None and clip > 0:
        p_neg = (p_neg + clip).clamp(max=1)
    loss_pos = y * torch.log(p.clamp(min=eps))
    loss_neg = (1 - y) * torch.log(p_neg.clamp(min=eps))
    if gamma_pos > 0 or gamma_neg > 0:
        pt = p * y + p_neg * (1 - y)
        gamma = gamma_pos * y + gamma_neg * (1 - y)
        loss_pos = loss_pos * torch.pow(1 - pt, gamma)
        loss_neg = loss_neg * torch.pow(1 - pt, gamma)
    loss = -(loss_pos + loss_neg) * valid
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / valid.sum().clamp(min=1)
    return loss


class AsymmetricLoss(nn.Module):
    """Module form of `asymmetric_loss`; holds only hyper-parameters, no tensors."""

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "sum",
    ):
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(
            logits, targets, self.gamma_pos, self.gamma_neg, self.clip, self.eps, self.reduction
        )

    def extra_repr(self) -> str:
        return (
            f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
            f"eps={self.eps}, reduction={self.reduction!r}"
        )
