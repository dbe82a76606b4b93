"""Output shapes, layouts and allocations shared by the op modules and the Triton launchers.

An op's fake (meta) kernel in lcnet_fast/ops/<op>.py and its Triton launcher in
lcnet_fast/ops/triton/<op>.py allocate their outputs with the same function from here, so a fake
tensor always has the shape, dtype and strides of the real output (opcheck's test_faketensor
compares them). A leaf: it imports torch and nothing from lcnet_fast, so both sides can import
it without an import cycle.
"""

from __future__ import annotations

import torch

# --- crop_views ---------------------------------------------------------------------------


def num_views(level: int) -> int:
    """Views per image at crop level `level`: the thumbnail, plus level**2 tiles if level > 1."""
    return 1 if level == 1 else level * level + 1


def crop_views_output(
    images: torch.Tensor, level: int, size: int, out_dtype: torch.dtype, channels_last: bool
) -> torch.Tensor:
    """Uninitialised (B, V, 3, size, size) output on images' device; channels_last stores it
    as a (B, V, size, size, 3) buffer (the C++ kernels allocate the same two layouts)."""
    b, v = images.shape[0], num_views(level)
    if channels_last:
        buf = images.new_empty((b, v, size, size, 3), dtype=out_dtype)
        return buf.permute(0, 1, 4, 2, 3)
    return images.new_empty((b, v, 3, size, size), dtype=out_dtype)


# --- dropout_add_layer_norm ---------------------------------------------------------------


def layer_norm_outputs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uninitialised (out, mean, rstd) for x (..., D): out like x (contiguous), fp32 stats
    (...)."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    mean = torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)
    rstd = torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)
    return out, mean, rstd


def layer_norm_grads(
    x: torch.Tensor, weight: torch.Tensor, has_mask: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uninitialised (grad_x, grad_residual, grad_weight, grad_bias); grad_x is (0,) without a
    mask (then it equals grad_residual, which the autograd formula reuses)."""
    dres = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    dx = torch.empty(x.shape if has_mask else (0,), dtype=x.dtype, device=x.device)
    dw = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
    db = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
    return dx, dres, dw, db


# --- cross_attention ----------------------------------------------------------------------

#: Largest head dim the attention kernels take (and so the op, on every backend).
ATTENTION_MAX_HEAD_DIM = 256
#: Query rows per program of the Triton attention forward on GPU (fp32 with Dh > 64 uses 32).
#: The split-KV rule (lcnet_fast/ops/cross_attention.py) counts programs with it; the launch
#: configuration (lcnet_fast/ops/triton/cross_attention_config.py) launches with it.
FWD_BLOCK_M_GPU = 64


def bhnd_view_of_bnhd(like: torch.Tensor) -> torch.Tensor:
    """A new tensor of like's (B, H, N, Dh) shape, dtype and device: the (B, H, N, Dh) view of
    (B, N, H, Dh) memory, strides (N*H*Dh, Dh, H*Dh, 1), as flash SDPA returns its output, so
    merging the heads back into (B, N, H*Dh) is a view."""
    b, h, n, dh = like.shape
    return like.new_empty((b, n, h, dh)).transpose(1, 2)


def attention_outputs(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out: see bhnd_view_of_bnhd, lse: fp32 (B, H, Nq) contiguous) of the attention
    forward."""
    b, h, nq, _ = q.shape
    return bhnd_view_of_bnhd(q), q.new_empty((b, h, nq), dtype=torch.float32)


def attention_grads(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) of q's, k's, v's shapes: each see bhnd_view_of_bnhd."""
    return bhnd_view_of_bnhd(q), bhnd_view_of_bnhd(k), bhnd_view_of_bnhd(v)
