"""Data order: one permutation per (seed, epoch), sharded over ranks, resumable mid-epoch.

torch's DistributedSampler is close, but it cannot start part-way through an epoch, and with one
process a plain RandomSampler draws from the global RNG (which dropout also consumes). This sampler
depends only on (seed, epoch, rank, world size, start).
"""

import math

import torch
from torch.utils.data import Dataset, Sampler

from lcnet_fast.engine import seeding
from lcnet_fast.engine.data import sample_with_skips


class EpochSampler(Sampler[int]):
    """Indices of one rank's shard for the current epoch.

    shuffle: a permutation seeded by (seed, epoch); else 0..n-1: the epoch's global order, which
    depends on neither the world size nor the batch size. Rank r takes positions r, r + W, ...
    so after k batches of B on each of W ranks exactly the first k * B * W positions are done.
    `set_epoch(epoch, start)` starts the epoch at global position `start` (a mid-epoch resume,
    possibly under another world size or batch size); the rest of the order is padded by
    wrapping to a multiple of world_size so every rank gets the same count (the padding repeats
    a few samples, as DistributedSampler does; only used for training). With start a multiple of
    the world size this is the shard the uninterrupted epoch would have had from there.
    """

    def __init__(
        self, size: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1
    ):
        if size < 1:
            raise ValueError("EpochSampler needs a non-empty dataset")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(size / world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        if self.shuffle:
            perm = torch.randperm(
                self.size, generator=seeding.generator(self.seed, seeding.ORDER, self.epoch)
            )
        else:
            perm = torch.arange(self.size)
        rest = perm[min(self.start, self.size) :]
        pad = -len(rest) % self.world_size
        if pad:
            rest = torch.cat([rest, perm[:pad]])
        return rest[self.rank :: self.world_size].tolist()

    def __iter__(self):
        return iter(self.order())

    def __len__(self) -> int:
        return remaining_per_rank(self.size, self.world_size, self.start)


def remaining_per_rank(size: int, world_size: int, start: int) -> int:
    """Indices each rank still gets in an epoch of `size` samples from global position `start`."""
    return math.ceil(max(size - start, 0) / world_size)


class ShardSampler(Sampler[int]):
    """Evaluation shard without padding: rank r gets r, r + W, ... (gathered and sorted later)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class SeededAugmentation(Dataset):
    """Wrap a dataset so the random transform of sample i in epoch e is seeded by (seed, e, i).

    The global torch RNG is forked around each item, so the wrapper neither consumes nor disturbs
    the stream that dropout uses, in the main process or in a worker.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.get_sample(index)[:2]

    def get_sample(self, index: int) -> tuple:
        """(image, label, skipped paths): see lcnet_fast.engine.data.sample_with_skips."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeding.derive_seed(self.seed, seeding.AUGMENT, self.epoch, index))
            return sample_with_skips(self.dataset, index)

    def __getattr__(self, name: str):
        # classes, labels, ... of the wrapped dataset (only called for attributes not found here)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
