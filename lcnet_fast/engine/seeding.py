"""Every random stream of a run is a pure function of (seed, what, epoch, step/index, rank).

Why: a run resumed from a checkpoint at any optimizer step must reproduce the uninterrupted run. If
the data order, the augmentation of each sample and the dropout masks of each step are each seeded
from their coordinates, nothing but (epoch, step) has to be restored -- no RNG state is carried
across the interruption, and the number of DataLoader workers does not change the result.
"""

import numpy as np
import torch

# stream tags keep the streams independent even when their numeric coordinates coincide
ORDER, AUGMENT, STEP, INIT, SPLIT = 1, 2, 3, 4, 5


def derive_seed(*coordinates: int) -> int:
    """A 63-bit seed from non-negative integers, well mixed (numpy SeedSequence)."""
    state = np.random.SeedSequence([int(c) for c in coordinates]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def seed_step(seed: int, epoch: int, step: int, rank: int) -> None:
    """Seed the global torch RNG (CPU and every GPU) for the dropout masks of one optimizer step."""
    torch.manual_seed(derive_seed(seed, STEP, epoch, step, rank))


def generator(*coordinates: int) -> torch.Generator:
    """A CPU torch.Generator seeded from the coordinates (for permutations)."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(*coordinates))
    return gen
