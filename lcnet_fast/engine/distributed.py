"""torchrun / DistributedDataParallel helpers. Single-process runs go through the same functions
with world_size 1, so the training code has no `if distributed` branches beyond these calls.

Backend: NCCL when the run uses CUDA, gloo on CPU. Only rank 0 writes files or prints progress;
evaluation scores are gathered from all ranks and re-ordered by sample index, so metrics are
computed on exactly the full split (no sampler padding).
"""

import datetime
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:<local_rank> when a GPU is visible, else cpu; anything else as given."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return device


def init_distributed(device: torch.device) -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise a 1-process DistInfo."""
    if not launched_by_torchrun():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank, world, local_rank)


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (returned; the input is left alone)."""
    values = values.detach().clone()
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj, info: DistInfo):
    """Rank 0's value of a picklable object on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_union(items: list[str], info: DistInfo) -> list[str]:
    """The sorted union of every rank's `items` (e.g. paths of skipped images), on every rank."""
    if info.enabled:
        parts = [None] * info.world_size
        dist.all_gather_object(parts, list(items))
        items = [item for part in parts for item in part]
    return sorted(set(items))


def gather_rows(
    indices: np.ndarray, rows: np.ndarray, info: DistInfo
) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's (indices, rows) concatenated and sorted by index: the split in dataset order."""
    if info.enabled:
        parts = [None] * info.world_size
        dist.all_gather_object(parts, (indices, rows))
        indices = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
    order = np.argsort(indices, kind="stable")
    return indices[order], rows[order]
