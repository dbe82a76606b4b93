"""Asymmetric Loss (Ben-Baruch, Ridnik et al. 2021), the loss LCNet trains with.

For p = sigmoid(logit) and target y in {1, 0, -1}:
    y = 1:  -(1 - p)^gamma_pos * log(max(p, eps))
    y = 0:  -p_m^gamma_neg * log(max(1 - p_m, eps)),  p_m = max(p - clip, 0)  (shifted probability)
    y = -1: ignored (contributes 0, and is left out of the 'mean' count)
The paper uses gamma_pos = 0, gamma_neg = 4, clip = 0.05. The focusing weight is part of the
graph (gradients flow through it), as in the formula; ASL's training script optionally detaches it,
which `detach_focusing=True` reproduces.
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
    detach_focusing: bool = False,
) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("logits and targets must be tensors")
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape"
        )
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the loss is computed in fp32 at least, also under autocast
    positive = targets == 1
    valid = targets != -1
    p = torch.sigmoid(logits)
    # probability of the *wrong* answer, shifted by clip for negatives: (1 - pt) in ASL's notation
    if clip is not None and clip > 0:
        p_wrong_neg = (p - clip).clamp(min=0)
    else:
        p_wrong_neg = p
    p_wrong = torch.where(positive, 1 - p, p_wrong_neg)
    log_right = torch.log((1 - p_wrong).clamp(min=eps))
    gamma = torch.where(positive, torch.full_like(p, gamma_pos), torch.full_like(p, gamma_neg))
    focusing = torch.pow(p_wrong, gamma)
    if detach_focusing:
        focusing = focusing.detach()
    loss = torch.where(valid, -focusing * log_right, torch.zeros_like(p))
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / valid.sum().clamp(min=1)
    return loss


class AsymmetricLoss(nn.Module):
    """Module form of `asymmetric_loss`; holds hyper-parameters only (no tensors on self)."""

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "sum",
        detach_focusing: bool = False,
    ):
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip, self.eps = gamma_pos, gamma_neg, clip, eps
        self.reduction, self.detach_focusing = reduction, detach_focusing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(
            logits,
            targets,
            self.gamma_pos,
            self.gamma_neg,
            self.clip,
            self.eps,
            self.reduction,
            self.detach_focusing,
        )

    def extra_repr(self) -> str:
        return (
            f"gamma_pos={self.gamma_pos}, gamma_neg={self.gamma_neg}, clip={self.clip}, "
            f"eps={self.eps}, reduction={self.reduction!r}"
        )
