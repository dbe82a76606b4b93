"""2D sine positional encoding (DETR's formulation), the same for every view of every image."""

import functools
import math

import torch


def sine_position_encoding_2d(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """(height*width, dim): first dim/2 channels encode the row, the rest the column.

    Each half interleaves sin/cos of the position (normalised to (0, 2*pi]) over dim/4 geometric
    frequencies. Built in float64 then cast, so every dtype gets the correctly rounded values.
    """
    if dim % 4 != 0:
        raise ValueError(f"d_model must be divisible by 4 for the 2D sine encoding, got {dim}")
    quarter = dim // 4
    inv_freq = temperature ** (-torch.arange(quarter, device=device, dtype=torch.float64) / quarter)

    def encode(length: int) -> torch.Tensor:  # (length, dim/2)
        position = torch.arange(1, length + 1, device=device, dtype=torch.float64) * (
            2 * math.pi / length
        )
        angle = position[:, None] * inv_freq[None, :]
        return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(length, 2 * quarter)

    grid = torch.cat(
        [
            encode(height)[:, None, :].expand(height, width, 2 * quarter),
            encode(width)[None, :, :].expand(height, width, 2 * quarter),
        ],
        dim=-1,
    )
    return grid.reshape(height * width, dim).to(dtype)


def position_table(height: int, width: int, dim: int, device, dtype) -> torch.Tensor:
    """sine_position_encoding_2d, built once per (height, width, dim, device, dtype).

    The table depends on shapes only, yet building it is ~10 small float64 kernels: on a GPU that
    is launch overhead on every eager forward. Cached tensors are shared, so callers must not
    modify them in place. Under torch.compile the table is built in the graph instead (the
    compiler folds it to a constant; a Python cache would only add guards).
    """
    if torch.compiler.is_compiling():
        return sine_position_encoding_2d(height, width, dim, device=device, dtype=dtype)
    return _cached_table(height, width, dim, torch.device(device), dtype)


@functools.lru_cache(maxsize=32)
def _cached_table(height: int, width: int, dim: int, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    # a normal tensor even when the first call comes from torch.inference_mode (an inference
    # tensor could not be used by a later training forward's autograd)
    with torch.inference_mode(False):
        return sine_position_encoding_2d(height, width, dim, device=device, dtype=dtype)
