"""Compile every Triton kernel ahead of time for an H200 (sm_90), at the launch configurations its
launcher picks on a GPU; print one JSON line per case: {"case", "shared", "regs", "stack",
"error"} (shared memory bytes per block; registers and stack (spill) bytes per thread, read by
the cuobjdump that ships with Triton's NVIDIA backend).

    python tests/ops/sm90_compile.py        # needs triton, no GPU, no driver

Run by tests/ops/test_triton_sm90_compile.py in a subprocess: kernels must be imported with the
interpreter OFF (the test session turns it on, and Triton decides at decoration time), so this
script clears TRITON_INTERPRET before importing them. Launch configurations come from the
launchers' own functions (cross_attention_config.fwd_config / bwd_config, _blocks, _num_warps,
...), so a change there is compiled too.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import traceback

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

TYPE = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
ATTENTION_CASES = [  # (dtype, Dh, dropout): the LLCD's Dh = 96, the smallest and largest blocks
    (torch.bfloat16, 96, False),
    (torch.bfloat16, 96, True),
    (torch.bfloat16, 256, True),
    (torch.float32, 96, True),
    (torch.float32, 256, False),
]
LAYER_NORM_DIMS = (768, 4096)
CROP_VIEWS_OUT = ("*fp32", "*bf16")


def resource_usage(cubin: bytes) -> tuple[int, int]:
    """(registers, stack bytes) per thread of the one kernel in `cubin`."""
    tools = glob.glob(
        os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    )
    if not tools:
        raise FileNotFoundError("cuobjdump not found in triton/backends/nvidia/bin")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        report = subprocess.run(
            [tools[0], "--dump-resource-usage", path], check=True, capture_output=True, text=True
        ).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", report)
    if found is None:
        raise RuntimeError(f"no REG/STACK in cuobjdump's report: {report[-500:]}")
    return int(found.group(1)), int(found.group(2))


def compile_sm90(
    kernel, pointers: dict, floats: tuple, constexprs: dict, num_warps: int, num_stages: int = 1
) -> dict:
    """triton.compile for sm_90 (PTX, then the bundled ptxas to a cubin); pointer args typed
    by `pointers`, `floats` fp32, other runtime args i32: sizes and every stride, the output
    strides of cross_attention's combine/dkdv/dq kernels included (unspecialised, where a real
    launch marks ints divisible by 16 and makes ints equal to 1 constants: the figures are the
    general case). Returns {shared, regs, stack}."""
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
        elif name.endswith("_ptr"):
            raise KeyError(f"{kernel.__name__}: give pointer {name} a type")
        else:
            signature[name] = "fp32" if name in floats else "i32"
    target = GPUTarget("cuda", 90, 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": num_warps, "num_stages": num_stages})
    source = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    compiled = triton.compile(source, target=target, options=options.__dict__)
    if "cubin" not in compiled.asm:
        raise RuntimeError(f"{kernel.__name__}: no cubin (ptxas did not run)")
    regs, stack = resource_usage(compiled.asm["cubin"])
    return {"shared": int(compiled.metadata.shared), "regs": regs, "stack": stack}


def attention_case(dtype, dh, dropout) -> list[tuple[str, callable]]:
    from lcnet_fast.ops.triton import cross_attention_bwd as ca_bwd
    from lcnet_fast.ops.triton import cross_attention_config as config
    from lcnet_fast.ops.triton import cross_attention_fwd as ca_fwd

    t = "*" + TYPE[dtype]
    block_d, prec = config.block_d_for(dh), config.precision(dtype)
    fwd = config.fwd_config(block_d, dtype, "cuda")
    bwd = config.bwd_config(block_d, dtype, "cuda")
    own, step = bwd["OWN"], bwd["STEP"]
    floats = ("qk_scale", "sm_scale", "dropout_p")
    qkv = {"q_ptr": t, "k_ptr": t, "v_ptr": t, "seed_ptr": "*i64"}
    grads = {**qkv, "do_ptr": t, "lse_ptr": "*fp32", "delta_ptr": "*fp32"}
    fwd_consts = dict(
        BLOCK_M=fwd["BLOCK_M"],
        BLOCK_N=fwd["BLOCK_N"],
        BLOCK_D=block_d,
        PRECISION=prec,
        DROPOUT=dropout,
    )
    launch = (fwd["num_warps"], fwd["num_stages"])
    bwd_launch = (bwd["num_warps"], bwd["num_stages"])
    return [
        (
            "fwd",
            lambda: compile_sm90(
                ca_fwd.fwd_kernel,
                {**qkv, "o_ptr": t, "lse_ptr": "*fp32"},
                floats,
                fwd_consts,
                *launch,
            ),
        ),
        (
            "fwd-split",
            lambda: compile_sm90(
                ca_fwd.fwd_kernel,
                {**qkv, "o_ptr": "*fp32", "lse_ptr": "*fp32"},
                floats,
                fwd_consts,
                *launch,
            ),
        ),
        (
            "combine",
            lambda: compile_sm90(
                ca_fwd.combine_kernel,
                {"op_ptr": "*fp32", "lp_ptr": "*fp32", "o_ptr": t, "lse_ptr": "*fp32"},
                (),
                dict(BLOCK_M=fwd["BLOCK_M"], BLOCK_D=block_d),
                fwd["num_warps"],
            ),
        ),
        (
            "delta",
            lambda: compile_sm90(
                ca_bwd.bwd_delta_kernel,
                {"o_ptr": t, "do_ptr": t, "delta_ptr": "*fp32"},
                (),
                dict(BLOCK_M=own, BLOCK_D=block_d),
                bwd["num_warps"],
            ),
        ),
        (
            "dkdv",
            lambda: compile_sm90(
                ca_bwd.bwd_dkdv_kernel,
                {**grads, "dk_ptr": t, "dv_ptr": t},
                floats,
                dict(BLOCK_M=step, BLOCK_N=own, BLOCK_D=block_d, PRECISION=prec, DROPOUT=dropout),
                *bwd_launch,
            ),
        ),
        (
            "dq",
            lambda: compile_sm90(
                ca_bwd.bwd_dq_kernel,
                {**grads, "dq_ptr": t},
                floats,
                dict(BLOCK_M=own, BLOCK_N=step, BLOCK_D=block_d, PRECISION=prec, DROPOUT=dropout),
                *bwd_launch,
            ),
        ),
    ]


def cases() -> list[tuple[str, callable]]:
    import cross_attention_keep_mask  # tests/ops, beside this script

    from lcnet_fast.ops.triton import crop_views as cv
    from lcnet_fast.ops.triton import dropout_add_layer_norm as dln

    out = []
    for dtype, dh, dropout in ATTENTION_CASES:
        tag = f"cross_attention-{TYPE[dtype]}-dh{dh}-{'drop' if dropout else 'nodrop'}"
        out += [(f"{tag}-{name}", fn) for name, fn in attention_case(dtype, dh, dropout)]
    out.append(
        (
            "cross_attention-keep_mask",
            lambda: compile_sm90(
                cross_attention_keep_mask.keep_mask_kernel,
                {"seed_ptr": "*i64", "keep_ptr": "*i1"},
                ("dropout_p",),
                dict(BLOCK_M=16, BLOCK_N=16),
                num_warps=4,
            ),
        )
    )
    rows = {
        "x_ptr": "*bf16",
        "res_ptr": "*bf16",
        "keep_ptr": "*u8",
        "w_ptr": "*fp32",
        "b_ptr": "*fp32",
        "y_ptr": "*bf16",
        "mean_ptr": "*fp32",
        "rstd_ptr": "*fp32",
        "dy_ptr": "*bf16",
        "dx_ptr": "*bf16",
        "dres_ptr": "*bf16",
        "dw_part_ptr": "*fp32",
        "db_part_ptr": "*fp32",
    }
    for d in LAYER_NORM_DIMS:
        block_d = triton.next_power_of_2(d)
        for name, kernel in (
            ("fwd", dln._dropout_add_layer_norm_fwd_kernel),
            ("bwd", dln._dropout_add_layer_norm_bwd_kernel),
        ):
            out.append(
                (
                    f"dropout_add_layer_norm-d{d}-{name}",
                    lambda kernel=kernel, b=block_d: compile_sm90(
                        kernel,
                        rows,
                        ("scale", "eps"),
                        dict(HAS_MASK=True, BLOCK_D=b),
                        dln._num_warps(b),
                    ),
                )
            )
    block_t, block_x = cv._blocks(448, "cuda")
    for out_type in CROP_VIEWS_OUT:
        out.append(
            (
                f"crop_views-{out_type[1:]}",
                lambda out_type=out_type: compile_sm90(
                    cv._crop_views_kernel,
                    {"in_ptr": "*u8", "out_ptr": out_type, "mean_ptr": "*fp32", "std_ptr": "*fp32"},
                    (),
                    dict(LEVEL=3, BLOCK_T=block_t, BLOCK_X=block_x),
                    num_warps=4,
                ),
            )
        )
    return out


def main() -> int:
    for case, build in cases():
        try:
            result = {"case": case, **build(), "error": None}
        except Exception:  # reported to the test, which fails and prints it
            result = {
                "case": case,
                "shared": None,
                "regs": None,
                "stack": None,
                "error": traceback.format_exc(limit=6),
            }
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
