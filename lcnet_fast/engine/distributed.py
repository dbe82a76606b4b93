"""torchrun / DistributedDataParallel helpers. Single-process runs go through the same functions
with world_size 1, so the training code has no `if distributed` branches beyond these calls.

Backend: NCCL when the run uses CUDA, gloo on CPU. Only rank 0 writes files or prints progress;
evaluation scores are gathered from all ranks and re-ordered by sample index, so metrics are
computed on exactly the full split (no sampler padding).

Stalled ranks: collectives wait at most train.collective_timeout_s (init_process_group's timeout).
Every rank also beats a counter in the rendezvous store from a daemon thread (Heartbeat); when a
collective times out (gloo raises; NCCL's watchdog ends the process with its own report) the rank
that waited reads the counters twice and names the ranks whose counter stood still: stopped
(SIGSTOP), hung in the kernel or dead -- not merely busy, since a busy rank's thread still beats.
"""

import datetime
import os
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from lcnet_fast.device import pick_device  # noqa: F401 (re-exported: its old home)
from lcnet_fast.errors import CollectiveTimeoutError


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


def init_distributed(device: torch.device, timeout_s: float = 300.0) -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise a 1-process DistInfo.
    timeout_s: how long a collective waits for the other ranks (train.collective_timeout_s)."""
    if not launched_by_torchrun():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank)


_TIMEOUT = re.compile(r"timed?[ -]?out|connection closed by peer|connection reset", re.IGNORECASE)


def is_collective_failure(exc: BaseException) -> bool:
    """A collective that timed out or lost a peer (gloo's errors say so in their text)."""
    return isinstance(exc, RuntimeError) and bool(_TIMEOUT.search(str(exc)))


class Heartbeat:
    """A counter per rank in the rendezvous store, advanced every `interval` seconds by a daemon
    thread (it keeps running while the main thread waits in a collective, which releases the
    GIL). Off (no-op) for 1-process runs or when the store cannot be reached."""

    PREFIX = "lcnet_fast/heartbeat/"

    def __init__(self, info: DistInfo, interval: float = 1.0):
        self.info, self.interval, self.store = info, interval, None
        self._stop = threading.Event()
        if not info.enabled:
            return
        try:  # torchrun: the agent hosts the store at MASTER_ADDR:MASTER_PORT
            self.store = dist.TCPStore(
                os.environ["MASTER_ADDR"],
                int(os.environ["MASTER_PORT"]),
                is_master=False,
                timeout=datetime.timedelta(seconds=10),
                wait_for_workers=False,
            )
            self._beat()
        except (KeyError, ValueError, RuntimeError):
            self.store = None
            return
        threading.Thread(target=self._run, name="lcnet_fast-heartbeat", daemon=True).start()

    def _key(self, rank: int) -> str:
        return f"{self.PREFIX}{rank}"

    def _beat(self) -> None:
        self.store.add(self._key(self.info.rank), 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception:  # the store is gone: the run is ending
                return

    def stop(self) -> None:
        self._stop.set()

    def _counts(self) -> dict[int, int]:
        return {
            rank: int(self.store.add(self._key(rank), 0))
            for rank in range(self.info.world_size)
            if rank != self.info.rank
        }

    def silent_ranks(self) -> list[int] | None:
        """The other ranks whose heartbeat does not advance over a few intervals; None when the
        store cannot be read (e.g. it lives in a rank that is itself stopped)."""
        if self.store is None:
            return None
        try:
            self.store.set_timeout(datetime.timedelta(seconds=5))
            before = self._counts()
            time.sleep(3 * self.interval)
            after = self._counts()
        except Exception:
            return None
        return [rank for rank in sorted(before) if after[rank] == before[rank]]


def explain_collective_failure(
    exc: BaseException, info: DistInfo, heartbeat: Heartbeat, timeout_s: float
) -> CollectiveTimeoutError:
    """The one-line error for a collective that timed out or lost a peer on this rank."""
    silent = heartbeat.silent_ranks()
    if silent:
        who = (
            f"rank {silent[0]} stopped responding"
            if len(silent) == 1
            else f"ranks {', '.join(map(str, silent))} stopped responding"
        )
        who += " (its heartbeat stands still: stopped, hung or dead)"
    elif silent is None:
        who = "could not tell which rank stalled (the rendezvous store is out of reach)"
    else:
        who = (
            "every other rank is still alive, so they are busy or stuck elsewhere (a data "
            "loader, a file system) or the network lost the messages"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CollectiveTimeoutError(
        f"rank {info.rank} of {info.world_size}: a collective operation did not complete within "
        f"train.collective_timeout_s = {timeout_s:g} s: {who}; training stopped, the last saved "
        f"checkpoint is kept (continue with --resume) [{first[:200]}]"
    )


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
