"""What a training step minimises and how, from the run config: the criterion (the Asymmetric
Loss), the AdamW optimizer with its parameter groups, and the OneCycle learning-rate schedule."""

from __future__ import annotations

import torch

from lcnet_fast.config import RunConfig


def build_optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW. Weight decay on matrices/kernels only; biases and norm scales are left alone (as ASL
    and ML-Decoder do). Parameters outside the timm backbone body (projection, decoder, graph,
    head) run at optim.lr * optim.decoder_lr_scale. Each group's "lr" is its peak learning rate
    (OneCycleLR's max_lr, see lr_peaks)."""
    split = cfg.optim.decoder_lr_scale != 1.0  # one rate: the two-group layout of older runs
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            in_backbone = not split or name.startswith(("backbone.body.", "body."))
            groups.setdefault((param.ndim >= 2, in_backbone), []).append(param)
    param_groups = [
        {
            "params": params,
            "weight_decay": cfg.optim.weight_decay if decay else 0.0,
            "lr": cfg.optim.lr * (1.0 if in_backbone else cfg.optim.decoder_lr_scale),
        }
        for (decay, in_backbone), params in sorted(groups.items(), reverse=True)
    ]
    return torch.optim.AdamW(param_groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


def lr_peaks(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each parameter group's peak learning rate, as build_optimizer set it."""
    return [group["lr"] for group in optimizer.param_groups]


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: RunConfig, total_steps: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR over the run's `total_steps` optimizer steps, each parameter group peaking at
    its own rate (lr_peaks). A closed form of its step: an elastic resume restarts it at any step
    (engine/resume.py)."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=lr_peaks(optimizer),
        total_steps=total_steps,
        pct_start=cfg.optim.pct_start,
        div_factor=cfg.optim.div_factor,
        final_div_factor=cfg.optim.final_div_factor,
    )


def build_criterion(cfg: RunConfig):
    from lcnet_fast.losses import AsymmetricLoss

    return AsymmetricLoss(
        gamma_pos=cfg.loss.gamma_pos,
        gamma_neg=cfg.loss.gamma_neg,
        clip=cfg.loss.clip,
        eps=cfg.loss.eps,
        reduction=cfg.loss.reduction,
    )
