"""Triton kernels and launchers of dropout_add_layer_norm (the ops
lcnet_fast::dropout_add_layer_norm_triton and ..._triton_backward, their fake kernels and autograd
are defined in lcnet_fast/ops/dropout_add_layer_norm.py, which imports this module on first use).

Design trade-off: forward = one program per row, the whole row in registers
(BLOCK_D = next_power_of_2(D), columns past D masked): x, residual and the 1-byte keep-mask
are read once, y written once, plus an fp32 mean and rstd per row; mean and variance are two
passes over registers (no E[h^2] - E[h]^2 cancellation). Holding the row in registers caps
D at 64 KiB of input per row (D <= 16384 in fp32, 32768 in fp16/bf16), far above the
decoder's D = 768; wider rows raise instead of spilling. Backward = a fixed number of
programs (a few per SM on GPU), each walking a contiguous block of rows: it recomputes
h = x * keep * scale + residual (re-reading x and residual rather than saving h in the
forward: no extra rows x D write and no extra memory held), writes grad_x / grad_residual,
and accumulates grad_weight / grad_bias for its rows in fp32 registers; those per-program
partial rows (P, D) are then summed by torch (P is small, so that last sum is cheap and its
order is fixed: deterministic). The dropout mask comes from the Python wrapper (torch RNG),
so this backend is element-for-element comparable with the others. All arithmetic is fp32;
inputs may be fp32/fp16/bf16 (bf16 only on GPU: the interpreter's bf16 is wrong).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.library import wrap_triton

from lcnet_fast.ops._shapes import layer_norm_grads, layer_norm_outputs

MAX_ROW_BYTES = 65536


@triton.jit
def _dropout_add_layer_norm_fwd_kernel(
    x_ptr,  # (M, D) x dtype, contiguous
    res_ptr,  # (M, D) x dtype, contiguous
    keep_ptr,  # uint8 (M, D) keep-mask (read only if HAS_MASK)
    w_ptr,  # (D,) x dtype or float32
    b_ptr,  # (D,) weight dtype
    y_ptr,  # (M, D) x dtype, output
    mean_ptr,  # float32 (M,), output
    rstd_ptr,  # float32 (M,), output
    D,  # int: row length
    scale,  # float: 1 / (1 - p)
    eps,  # float
    HAS_MASK: tl.constexpr,
    BLOCK_D: tl.constexpr,  # next_power_of_2(D)
):
    # grid: (M,)
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    off = row * D + cols
    h = tl.load(x_ptr + off, mask=cmask, other=0.0).to(tl.float32)
    if HAS_MASK:
        keep = tl.load(keep_ptr + off, mask=cmask, other=0).to(tl.float32)
        h = h * (keep * scale)
    h += tl.load(res_ptr + off, mask=cmask, other=0.0).to(tl.float32)
    mean = tl.sum(h, axis=0) / D
    c = tl.where(cmask, h - mean, 0.0)
    var = tl.sum(c * c, axis=0) / D
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    y = c * rstd * w + b
    tl.store(y_ptr + off, y.to(y_ptr.dtype.element_ty), mask=cmask)
    tl.store(mean_ptr + row, mean)
    tl.store(rstd_ptr + row, rstd)


@triton.jit
def _dropout_add_layer_norm_bwd_kernel(
    dy_ptr,  # (M, D) x dtype, contiguous
    x_ptr,  # (M, D) x dtype, contiguous
    res_ptr,  # (M, D) x dtype, contiguous
    keep_ptr,  # uint8 (M, D) keep-mask (read only if HAS_MASK)
    w_ptr,  # (D,) x dtype or float32
    mean_ptr,  # float32 (M,)
    rstd_ptr,  # float32 (M,)
    dx_ptr,  # (M, D) x dtype, output (written only if HAS_MASK)
    dres_ptr,  # (M, D) x dtype, output
    dw_part_ptr,  # float32 (P, D), output: this program's sum of dy * xhat
    db_part_ptr,  # float32 (P, D), output: this program's sum of dy
    M,  # int: rows
    D,  # int: row length
    rows_per_program,  # int: ceil(M / P)
    scale,  # float: 1 / (1 - p)
    HAS_MASK: tl.constexpr,
    BLOCK_D: tl.constexpr,  # next_power_of_2(D)
):
    # grid: (P,)
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    acc_dw = tl.zeros((BLOCK_D,), dtype=tl.float32)
    acc_db = tl.zeros((BLOCK_D,), dtype=tl.float32)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, M)
    off = pid.to(tl.int64) * rows_per_program * D + cols  # int64: M * D may exceed 2**31
    for row in range(row_start, row_end):
        h = tl.load(x_ptr + off, mask=cmask, other=0.0).to(tl.float32)
        if HAS_MASK:
            keep = tl.load(keep_ptr + off, mask=cmask, other=0).to(tl.float32) * scale
            h = h * keep
        h += tl.load(res_ptr + off, mask=cmask, other=0.0).to(tl.float32)
        mean = tl.load(mean_ptr + row)
        rstd = tl.load(rstd_ptr + row)
        xhat = tl.where(cmask, (h - mean) * rstd, 0.0)
        dy = tl.load(dy_ptr + off, mask=cmask, other=0.0).to(tl.float32)
        g = dy * w
        a = tl.sum(g * xhat, axis=0) / D
        c = tl.sum(g, axis=0) / D
        dh = (g - xhat * a - c) * rstd
        tl.store(dres_ptr + off, dh.to(dres_ptr.dtype.element_ty), mask=cmask)
        if HAS_MASK:
            tl.store(dx_ptr + off, (dh * keep).to(dx_ptr.dtype.element_ty), mask=cmask)
        acc_dw += dy * xhat
        acc_db += dy
        off += D
    tl.store(dw_part_ptr + pid * D + cols, acc_dw, mask=cmask)
    tl.store(db_part_ptr + pid * D + cols, acc_db, mask=cmask)


def _block_d(x: torch.Tensor) -> int:
    d = x.shape[-1]
    if d * x.element_size() > MAX_ROW_BYTES:
        raise ValueError(
            f"dropout_add_layer_norm (triton backend): rows of {d} {x.dtype} elements exceed "
            f"{MAX_ROW_BYTES} bytes (one row is held in registers); use the torch or cpp "
            f"backend (LCNET_FAST_BACKEND) for such wide rows"
        )
    return triton.next_power_of_2(d)


def _num_warps(block_d: int) -> int:
    return min(max(block_d // 256, 1), 8)


def _launch_meta(x: torch.Tensor, mask: torch.Tensor | None) -> dict:
    """The compile-time arguments both kernels launch with (raises for too-wide rows)."""
    block_d = _block_d(x)
    return dict(HAS_MASK=mask is not None, BLOCK_D=block_d, num_warps=_num_warps(block_d))


def _num_programs(x: torch.Tensor, rows: int) -> int:
    if x.device.type == "cuda":
        sms = torch.cuda.get_device_properties(x.device).multi_processor_count
        return max(1, min(rows, 4 * sms))
    return max(1, min(rows, 2))  # interpreter: programs run serially, fewest is fastest


def _keep_u8(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return x  # never read (HAS_MASK=False); any valid pointer
    m = mask.contiguous()
    return m.view(torch.uint8) if m.dtype == torch.bool else m


def forward(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as torch.ops.lcnet_fast.dropout_add_layer_norm; arguments validated by
    the wrapper. Returns (out, mean, rstd)."""
    out, mean, rstd = layer_norm_outputs(x)
    d = x.shape[-1]
    rows = x.numel() // d
    if rows == 0:
        return out, mean, rstd
    meta = _launch_meta(x, mask)
    wrap_triton(_dropout_add_layer_norm_fwd_kernel)[(rows,)](
        x.contiguous(),
        residual.contiguous(),
        _keep_u8(mask, x),
        weight.contiguous(),
        bias.contiguous(),
        out,
        mean,
        rstd,
        d,
        scale,
        eps,
        **meta,
    )
    return out, mean, rstd


def backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as torch.ops.lcnet_fast.dropout_add_layer_norm_backward."""
    dx, dres, _, _ = layer_norm_grads(x, weight, mask is not None)
    d = x.shape[-1]
    rows = x.numel() // d
    if rows == 0:
        return dx, dres, torch.zeros_like(weight), torch.zeros_like(weight)
    meta = _launch_meta(x, mask)
    n_prog = _num_programs(x, rows)
    rows_per_program = triton.cdiv(rows, n_prog)
    dw_part = torch.empty((n_prog, d), dtype=torch.float32, device=x.device)
    db_part = torch.empty((n_prog, d), dtype=torch.float32, device=x.device)
    wrap_triton(_dropout_add_layer_norm_bwd_kernel)[(n_prog,)](
        grad_out.contiguous(),
        x.contiguous(),
        residual.contiguous(),
        _keep_u8(mask, x),
        weight.contiguous(),
        mean.contiguous(),
        rstd.contiguous(),
        dx if mask is not None else dres,
        dres,
        dw_part,
        db_part,
        rows,
        d,
        rows_per_program,
        scale,
        **meta,
    )
    return dx, dres, dw_part.sum(0).to(weight.dtype), db_part.sum(0).to(weight.dtype)
