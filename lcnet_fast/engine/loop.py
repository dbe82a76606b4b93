"""The inner loops: one training epoch (micro-batches, accumulation, clipping, EMA, NaN guard) and
scoring a split for evaluation. No file I/O here; checkpoints are written by a callback.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lcnet_fast.device import autocast, resolve_precision  # noqa: F401 (re-exported)
from lcnet_fast.engine import seeding
from lcnet_fast.engine.distributed import DistInfo, all_reduce_sum
from lcnet_fast.engine.ema import ModelEMA
from lcnet_fast.engine.progress import Progress
from lcnet_fast.errors import DivergenceError, NonFiniteLossError, NonFiniteScoresError


def weight_norm(module: nn.Module) -> float:
    """The global L2 norm of a module's parameters (all of them, trainable or not)."""
    return float(torch.nn.utils.get_total_norm([p.detach() for p in module.parameters()]))


def check_finite_scores(scores: np.ndarray, what: str, consequence: str) -> None:
    """Raise NonFiniteScoresError when any score is NaN/inf: `what` names the scores (e.g.
    "validation scores at epoch 3"), `consequence` says what happens now."""
    bad_rows = ~np.isfinite(scores).all(axis=1) if scores.ndim == 2 else ~np.isfinite(scores)
    if bool(bad_rows.any()):
        raise NonFiniteScoresError(
            f"{what} are NaN/inf for {int(bad_rows.sum())} of {len(bad_rows)} images: the "
            f"model's weights diverged; {consequence}"
        )


@dataclass
class Position:
    """Where training stands; saved in every checkpoint.

    epoch: completed epochs. batch: micro-batches done in the current epoch (0 at a boundary).
    step: optimizer steps done in total. loss_sum / images / seconds: running totals of the current
    epoch (so a mid-epoch resume reports the same epoch loss). skipped: paths of the unreadable
    images skipped in the current epoch.
    """

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    images: int = 0
    seconds: float = 0.0
    lr: float = 0.0  # learning rate of the latest optimizer step (for logs)
    # unreadable training images skipped so far in this epoch (data.skip_bad_images), all ranks
    # after a checkpoint, this rank's in between
    skipped: list[str] = field(default_factory=list)

    def state(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TrainParts:
    model: nn.Module  # what forward runs (DDP- and/or compile-wrapped)
    raw_model: nn.Module  # the unwrapped module (EMA source, state_dict)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ema: ModelEMA | None
    device: torch.device
    precision: str
    dist: DistInfo
    seed: int
    accumulation_steps: int
    grad_clip: float
    loss_reduction: str
    # loader batch (already on the device) -> model input: engine.data.DeviceViews
    to_input: Callable[[torch.Tensor], torch.Tensor]
    # divergence guard: the weight norm at the start of training and the allowed growth factor
    # (train.max_weight_growth; 0 = off)
    initial_weight_norm: float = 0.0
    max_weight_growth: float = 0.0
    extra: dict = field(default_factory=dict)


def steps_in_epoch(batches: int, accumulation_steps: int) -> int:
    return math.ceil(batches / accumulation_steps)


def check_divergence(parts: TrainParts, position: Position) -> None:
    """After an optimizer step: raise DivergenceError when the weights are NaN/inf (always) or
    their global norm exceeds max_weight_growth x the initial norm (when > 0). Every rank holds
    the same weights (DDP), so every rank reaches the same verdict and they stop together."""
    norm = weight_norm(parts.raw_model)
    where = f"at step {position.step + 1} (epoch {position.epoch + 1})"
    stop = "training stopped, the last saved checkpoint is kept as it was"
    lr = parts.optimizer.param_groups[0]["lr"]
    if not math.isfinite(norm):
        raise DivergenceError(
            f"training diverged {where}: the optimizer step made the weights NaN/inf "
            f"(learning rate {lr:.3g}; lower optim.lr); {stop}"
        )
    if parts.max_weight_growth <= 0 or parts.initial_weight_norm <= 0:
        return
    growth = norm / parts.initial_weight_norm
    if growth > parts.max_weight_growth:
        raise DivergenceError(
            f"training diverged {where}: the global weight norm is {norm:.3g}, {growth:.3g}x its "
            f"initial {parts.initial_weight_norm:.3g} (limit train.max_weight_growth "
            f"{parts.max_weight_growth:g}; learning rate {lr:.3g}): lower optim.lr, or raise the "
            f"limit (0 = off); {stop}"
        )


def _grad_norm(parts: TrainParts) -> torch.Tensor:
    params = [p for p in parts.raw_model.parameters() if p.grad is not None]
    if parts.grad_clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, parts.grad_clip)
    return torch.nn.utils.get_total_norm([p.grad for p in params])


def train_epoch(
    parts: TrainParts,
    loader,
    batches_per_epoch: int,
    position: Position,
    epochs: int,
    progress: Progress,
    log_every: int,
    on_step: Callable[[Position], None],
) -> Position:
    """Run the rest of epoch `position.epoch` (from micro-batch `position.batch`).

    Dropout is seeded per micro-batch from (seed, epoch, batch, rank): nothing about the RNG has to
    be carried across a resume. An optimizer step happens every `accumulation_steps` micro-batches
    and at the end of the epoch. `on_step(position)` runs after every optimizer step (the checkpoint
    callback).
    """
    parts.model.train()
    accum = parts.accumulation_steps
    total_steps = steps_in_epoch(batches_per_epoch, accum)
    world = parts.dist.world_size
    progress.reset(position.images, math.ceil(position.batch / accum))
    seen = set(position.skipped)
    for images, targets, skipped in loader:
        for path in (path for paths in skipped for path in paths if path not in seen):
            seen.add(path)
            position.skipped.append(path)
        batch_index = position.batch
        group_start = batch_index - batch_index % accum
        group_size = min(accum, batches_per_epoch - group_start)
        last_of_group = batch_index - group_start == group_size - 1
        seeding.seed_step(parts.seed, position.epoch, batch_index, parts.dist.rank)
        images = parts.to_input(images.to(parts.device, non_blocking=True))
        targets = targets.to(parts.device, non_blocking=True)
        sync = contextlib.nullcontext()
        if not last_of_group and hasattr(parts.model, "no_sync"):
            sync = parts.model.no_sync()  # DDP: all-reduce gradients once per optimizer step
        with sync:
            with autocast(parts.device, parts.precision):
                logits = parts.model(images)
            loss = parts.criterion(logits.float(), targets)
            # every rank checks the SAME summed value, so all ranks stop together (no hang)
            summed = all_reduce_sum(loss.detach().float().reshape(1), parts.dist).item()
            if not math.isfinite(summed):
                raise NonFiniteLossError(
                    f"training loss is {summed} at step {position.step + 1} "
                    f"(epoch {position.epoch + 1}, batch {batch_index + 1}); training stopped, "
                    f"the last saved checkpoint is kept as it was"
                )
            scaled = loss / group_size if parts.loss_reduction == "mean" else loss
            scaled.backward()
        position.batch += 1
        position.loss_sum += summed
        position.images += images.shape[0] * world
        if not last_of_group:
            continue
        norm = _grad_norm(parts)
        if not torch.isfinite(norm):
            raise NonFiniteLossError(
                f"gradient norm is {norm.item()} at step {position.step + 1} "
                f"(epoch {position.epoch + 1}); "
                f"training stopped, the last saved checkpoint is kept as it was"
            )
        position.lr = parts.optimizer.param_groups[0]["lr"]
        parts.optimizer.step()
        check_divergence(parts, position)
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scheduler.step()
        if parts.ema is not None:
            parts.ema.update(parts.raw_model)
        position.step += 1
        step_in_epoch = math.ceil(position.batch / accum)
        if log_every > 0 and (step_in_epoch % log_every == 0 or step_in_epoch == total_steps):
            progress.step(
                position.epoch + 1,
                epochs,
                step_in_epoch,
                total_steps,
                position.loss_sum / max(position.images, 1),
                position.lr,
                position.images,
                parts.scheduler.total_steps - parts.scheduler.last_epoch
                if hasattr(parts.scheduler, "total_steps")
                else None,
            )
        on_step(position)
    return position


@torch.no_grad()
def score_split(
    module: nn.Module,
    loader,
    indices: list[int],
    device: torch.device,
    precision: str,
    to_input: Callable[[torch.Tensor], torch.Tensor],
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(indices, sigmoid scores (n, C) float64, targets (n, C), skipped) of one rank's shard.
    skipped[k]: the unreadable image paths skipped for sample k (non-empty: the row scores a
    stand-in image, not image indices[k]; see MultiLabelDataset.get_sample).
    to_input: loader batch (on the device) -> model input, as TrainParts.to_input.
    on_batch(images scored so far): progress callback."""
    was_training = module.training
    module.eval()
    scores, targets, skips = [], [], []
    for images, labels, skipped in loader:
        skips.extend(skipped)
        views = to_input(images.to(device, non_blocking=True))
        with autocast(device, precision):
            logits = module(views)
        scores.append(torch.sigmoid(logits.float()).cpu().double().numpy())
        targets.append(labels.double().numpy())
        if on_batch is not None:
            on_batch(len(skips))
    module.train(was_training)
    num_classes = getattr(module, "num_classes", 0)
    if not scores:  # a rank with an empty shard (split smaller than the world size)
        empty = np.zeros((0, num_classes))
        return np.zeros(0, np.int64), empty, empty, []
    return np.asarray(indices, np.int64), np.concatenate(scores), np.concatenate(targets), skips
