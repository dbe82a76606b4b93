"""dropout_add_layer_norm, forward + backward: plain PyTorch (F.dropout + add + F.layer_norm)
against each fast backend.

    pytest benchmarks/bench_dropout_add_layer_norm.py          # CPU: rows 800, D 128/768, fp32:
                                                               # eager vs torch.compile vs cpp
    pytest benchmarks/bench_dropout_add_layer_norm.py -m gpu   # GPU: rows 56*1960, D 768, bf16:
                                                               # eager vs torch.compile vs triton
    python benchmarks/bench_dropout_add_layer_norm.py --rounds 60   # interleaved A/B, CPU
        [--p 0 --rows 640 --dims 128]                            # (no mask; other shapes)

Group `dropout_add_layer_norm`. pytest-benchmark runs providers one after another, and CPU
timing here is noisy, so the script mode times torch and cpp in alternating rounds in one
process and prints the median per-round ratio (the figure to quote).
Every provider draws a fresh dropout mask per call (p = 0.1, training), as in training.
"""
import argparse
import functools
import os
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from lcnet_fast.ops import _backend, dropout_add_layer_norm

OP = "dropout_add_layer_norm"
P = 0.1
HAS_CUDA = torch.cuda.is_available()
CPU_ROWS = 4 * 200
CPU_DIMS = (128, 768)
GPU_ROWS = 56 * 1960
GPU_DIM = 768


def _inputs(rows, d, dtype, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, d, generator=g).to(device=device, dtype=dtype).requires_grad_()
    r = torch.randn(rows, d, generator=g).to(device=device, dtype=dtype).requires_grad_()
    w = torch.ones(d, device=device, dtype=dtype).requires_grad_()
    b = torch.zeros(d, device=device, dtype=dtype).requires_grad_()
    dy = torch.randn(rows, d, generator=g).to(device=device, dtype=dtype)
    return x, r, w, b, dy


def torch_eager(x, r, w, b, p=P):
    return F.layer_norm(F.dropout(x, p, True) + r, (x.shape[-1],), w, b, 1e-5)


def fused(x, r, w, b, p=P):
    return dropout_add_layer_norm(x, r, w, b, p)


def _step(fn, args):
    x, r, w, b, dy = args
    for t in (x, r, w, b):
        t.grad = None
    fn(x, r, w, b).backward(dy)
    if x.is_cuda:
        torch.cuda.synchronize()


def _run(benchmark, provider, device, rows, d, dtype, rounds):
    args = _inputs(rows, d, dtype, device)
    if provider == "torch":
        fn = torch_eager
    elif provider == "torch.compile":
        fn = torch.compile(torch_eager, fullgraph=True)
    else:
        reason = _backend.unavailable_reason(provider, OP, device)
        if reason:
            pytest.skip(reason)
        fn = fused
    os.environ[_backend.ENV_VAR] = provider if provider in _backend.BACKENDS else "auto"
    try:
        _step(fn, args)  # warm-up: lazy imports, Triton / inductor compile
        benchmark.extra_info.update(provider=provider, device=device, rows=rows, d=d,
                                    dtype=str(dtype), p=P, what="forward+backward")
        benchmark.pedantic(_step, args=(fn, args), rounds=rounds, iterations=1,
                           warmup_rounds=2)
    finally:
        os.environ.pop(_backend.ENV_VAR, None)


@pytest.mark.benchmark(group=OP)
@pytest.mark.parametrize("d", CPU_DIMS)
@pytest.mark.parametrize("provider", ["torch", "torch.compile", "cpp"])
def test_dropout_add_layer_norm_cpu(benchmark, provider, d):
    _run(benchmark, provider, "cpu", CPU_ROWS, d, torch.float32, rounds=30)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.benchmark(group=OP)
@pytest.mark.parametrize("provider", ["torch", "torch.compile", "triton"])
def test_dropout_add_layer_norm_gpu(benchmark, provider):
    _run(benchmark, provider, "cuda", GPU_ROWS, GPU_DIM, torch.bfloat16, rounds=30)


def interleaved_ab(rounds, rows=CPU_ROWS, dims=CPU_DIMS, dtype=torch.float32, p=P):
    """torch eager vs the cpp backend, alternating which goes first each round."""
    eager = functools.partial(torch_eager, p=p)
    cpp = functools.partial(fused, p=p)
    os.environ[_backend.ENV_VAR] = "cpp"
    results = {}
    try:
        for d in dims:
            args = _inputs(rows, d, dtype, "cpu")
            _step(eager, args), _step(cpp, args)
            t_torch, t_cpp = [], []
            for i in range(rounds):
                order = ((eager, t_torch), (cpp, t_cpp))
                for fn, acc in (order if i % 2 == 0 else order[::-1]):
                    start = time.perf_counter()
                    _step(fn, args)
                    acc.append(time.perf_counter() - start)
            ratios = [a / b for a, b in zip(t_torch, t_cpp, strict=True)]
            results[d] = (statistics.median(t_torch), statistics.median(t_cpp),
                          statistics.median(ratios))
    finally:
        os.environ.pop(_backend.ENV_VAR, None)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="interleaved torch-vs-cpp A/B, fwd+bwd")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--p", type=float, default=P, help="dropout probability (0: no mask)")
    parser.add_argument("--rows", type=int, default=CPU_ROWS)
    parser.add_argument("--dims", default=",".join(map(str, CPU_DIMS)))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reason = _backend.unavailable_reason("cpp", OP, "cpu")
    if reason:
        raise SystemExit(f"cpp backend unavailable: {reason}")
    dims = [int(d) for d in args.dims.split(",")]
    for d, (a, b, ratio) in interleaved_ab(args.rounds, args.rows, dims, p=args.p).items():
        print(f"rows={args.rows} D={d} fp32 p={args.p} fwd+bwd  torch: {a * 1e3:7.2f} ms  "
              f"cpp: {b * 1e3:7.2f} ms  median per-round torch/cpp = {ratio:.2f}x "
              f"({args.rounds} rounds, {args.threads} threads)", flush=True)


if __name__ == "__main__":
    main()
