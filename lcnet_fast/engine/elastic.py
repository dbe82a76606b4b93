"""Elastic resume: continue a run under another world size (torchrun processes) or per-process
batch size than the one that saved its checkpoint.

What is kept:
- the data: every epoch follows the same global order (EpochSampler); a checkpoint records how
  many positions of it are done (Position.images, over all ranks), and the resumed run shards the
  rest over its own ranks, so each epoch still sees every image once (plus the usual wrap-around
  padding to a multiple of the world size);
- the images per optimizer step (world size x batch size x accumulation steps), by recomputing the
  accumulation steps when the new world size x batch size divides it (2 processes x 4 -> 1 process
  x 4 x 2 accumulation steps). When it does not (1 x 8 -> 2 x 8), the accumulation steps stay and
  the optimizer steps take more (or fewer) images from then on; a line says so;
- the learning-rate schedule's position: OneCycleLR is rebuilt for the step count the new geometry
  gives (epochs x optimizer steps per epoch) and started at the step that leaves exactly the steps
  the rest of the run will take, so it ends at its end (no "Tried to step N times").

What cannot be kept: bitwise equality with an uninterrupted run (batches are cut differently, the
dropout masks and BatchNorm batch statistics differ), and the exact learning rate at each image
when the images per step change. A resume under the same geometry is unchanged: bitwise equal to
the uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lcnet_fast.engine.sampler import remaining_per_rank


@dataclass(frozen=True)
class Geometry:
    world_size: int
    batch_size: int  # per process
    accumulation_steps: int

    @property
    def images_per_step(self) -> int:
        return self.world_size * self.batch_size * self.accumulation_steps

    def describe(self) -> str:
        processes = "process" if self.world_size == 1 else "processes"
        return (
            f"{self.world_size} {processes} x batch {self.batch_size} x accumulation "
            f"{self.accumulation_steps}"
        )


def batches_per_epoch(size: int, world_size: int, batch_size: int) -> tuple[int, bool]:
    """(micro-batches per rank in a full epoch, drop_last) as the trainer cuts an epoch: drop the
    last partial batch unless a rank has less than one full batch (keeps BatchNorm away from a
    1-image batch)."""
    per_rank = math.ceil(size / world_size)
    drop_last = per_rank >= batch_size
    return (per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)), drop_last


def remaining_batches(size: int, world_size: int, batch_size: int, done: int) -> int:
    """Micro-batches per rank left in an epoch whose first `done` global positions are done."""
    per_rank = remaining_per_rank(size, world_size, done)
    _, drop_last = batches_per_epoch(size, world_size, batch_size)
    return per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)


def adapt(old: Geometry, world_size: int, batch_size: int) -> Geometry:
    """The new geometry: same images per optimizer step when world_size x batch_size divides it."""
    per_micro_batch = world_size * batch_size
    if old.images_per_step % per_micro_batch == 0:
        return Geometry(world_size, batch_size, old.images_per_step // per_micro_batch)
    return Geometry(world_size, batch_size, old.accumulation_steps)


def steps_in(batches: int, accumulation_steps: int) -> int:
    return math.ceil(batches / accumulation_steps)


def recorded_world_size(meta: dict, size: int, world_now: int) -> int:
    """The world size that wrote a training checkpoint. Recorded since elastic resume; for older
    checkpoints inferred from the position (images done / (batches done x batch size)) or the
    scheduler's step count, else assumed unchanged."""
    if "world_size" in meta:
        return int(meta["world_size"])
    config, position = meta.get("config", {}), meta.get("position", {})
    batch = int(config.get("train", {}).get("batch_size", 0) or 0)
    accumulation = int(config.get("optim", {}).get("accumulation_steps", 1) or 1)
    epochs = int(config.get("train", {}).get("epochs", 0) or 0)
    if batch < 1:
        return world_now
    if position.get("batch", 0) > 0 and position.get("images", 0) > 0:
        world, left = divmod(int(position["images"]), int(position["batch"]) * batch)
        if left == 0 and world >= 1:
            return world
    total = (meta.get("scheduler") or {}).get("total_steps")
    if total and epochs:
        candidates = [
            world
            for world in range(1, 1025)
            if epochs * steps_in(batches_per_epoch(size, world, batch)[0], accumulation) == total
        ]
        if candidates and world_now not in candidates:
            return candidates[0]
    return world_now


@dataclass
class Continuation:
    """Where a run continues under a new geometry."""

    batch: int  # micro-batch counter in the current epoch (a multiple of the accumulation steps)
    epoch_batches: int  # micro-batches of the current epoch, counting those before `batch`
    schedule_step: int  # the OneCycle step to start at
    total_steps: int  # the OneCycle step count of the new geometry


def continuation(geometry: Geometry, size: int, epochs: int, epoch: int, done: int) -> Continuation:
    """The new geometry's position for a run at `epoch` with `done` global positions of it done."""
    full, _ = batches_per_epoch(size, geometry.world_size, geometry.batch_size)
    per_step = geometry.world_size * geometry.batch_size * geometry.accumulation_steps
    batch = geometry.accumulation_steps * (done // per_step)
    rest = remaining_batches(size, geometry.world_size, geometry.batch_size, done)
    epoch_batches = batch + rest
    accumulation = geometry.accumulation_steps
    total = epochs * steps_in(full, accumulation)
    left = 0
    if epoch < epochs:
        left = steps_in(epoch_batches, accumulation) - batch // accumulation
        left += (epochs - epoch - 1) * steps_in(full, accumulation)
    return Continuation(batch, epoch_batches, max(total - left, 0), total)
