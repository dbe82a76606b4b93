"""The 2D sine positional encoding added to each view's feature map (DETR's formulation)."""

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
    """Return (height*width, dim) encodings, row-major over the grid.

    The first dim/2 channels encode the row, the last dim/2 the column; each half alternates sine
    and cosine over geometrically spaced frequencies. Positions are normalised to (0, 2*pi] so the
    encoding does not depend on the grid size's absolute scale.
    """
    if dim % 4 != 0:
        raise ValueError(f"d_model must be divisible by 4 for the 2D sine encoding, got {dim}")
    quarter = dim // 4
    scale = 2 * math.pi
    rows = torch.arange(1, height + 1, device=device, dtype=torch.float64) / height * scale
    cols = torch.arange(1, width + 1, device=device, dtype=torch.float64) / width * scale
    freqs = temperature ** (torch.arange(quarter, device=device, dtype=torch.float64) / quarter)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / freqs[None, :]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (P, dim/2)

    row_code = encode(rows)[:, None, :].expand(height, width, dim // 2)
    col_code = encode(cols)[None, :, :].expand(height, width, dim // 2)
    return torch.cat([row_code, col_code], dim=-1).reshape(height * width, dim).to(dtype)
