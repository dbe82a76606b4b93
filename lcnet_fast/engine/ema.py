"""Exponential moving average of the weights (and floating buffers, e.g. BatchNorm statistics).

shadow = decay_n * shadow + (1 - decay_n) * current after every optimizer step, with
decay_n = min(decay, (1 + n) / (10 + n)) when warm-up is on (n = updates so far), so a short run is
not dominated by the random initial weights. Integer buffers (BatchNorm's num_batches_tracked) are
copied. The shadow is a separate module in eval mode and never receives gradients.
"""

import copy

import torch
from torch import nn


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1 + self.updates) / (10 + self.updates))
        return self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        shadow = self.module.state_dict()
        floats, targets = [], []
        for name, value in model.state_dict().items():
            target = shadow[name]
            if target.is_floating_point():
                targets.append(target)
                floats.append(value.detach().to(target.dtype))
            else:
                target.copy_(value)
        if targets:
            # one fused call over all tensors: this runs after every optimizer step
            torch._foreach_lerp_(targets, floats, 1.0 - decay)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()
