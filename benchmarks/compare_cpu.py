"""Interleaved A/B timings in one process (this machine is noisy: only paired ratios count).

    python benchmarks/compare_cpu.py [--rounds 15]

Prints, for each comparison, the median time of A and B over alternating rounds and the median of
the per-round ratio B/A (> 1: A is faster).
"""

import argparse
import statistics
import time

import torch

from benchmarks.models import (
    CPU_BATCH,
    CPU_LLCD,
    CPU_MODEL,
    llcd_inputs,
    llcd_stacks,
    model_pair,
    run_stack,
)


def interleaved(fn_a, fn_b, rounds):
    fn_a(), fn_b()  # warm-up
    times_a, times_b, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        fn_a()
        mid = time.perf_counter()
        fn_b()
        end = time.perf_counter()
        times_a.append(mid - start)
        times_b.append(end - mid)
        ratios.append((end - mid) / (mid - start))
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def report(name, label_a, label_b, result):
    a, b, ratio = result
    print(
        f"{name:<40} {label_a}: {a * 1e3:8.1f} ms   {label_b}: {b * 1e3:8.1f} ms   "
        f"median({label_b}/{label_a}) = {ratio:.2f}x",
        flush=True,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    reference, fast = model_pair(**CPU_MODEL)
    side = CPU_MODEL["crop_level"] * CPU_MODEL["image_size"]
    images = torch.randn(CPU_BATCH, 3, side, side)

    def train_step(model):
        def step():
            model.zero_grad(set_to_none=True)
            model(images).sum().backward()

        return step

    reference.train(), fast.train()
    report(
        "LCNet fwd+bwd (train mode)",
        "fast",
        "reference",
        interleaved(train_step(fast), train_step(reference), args.rounds),
    )

    def views_per_call(limit):
        def step():
            fast.max_views_per_call = limit
            fast.zero_grad(set_to_none=True)
            fast(images).sum().backward()

        return step

    report(
        "fast fwd+bwd: one call vs per-view calls",
        "one-call",
        "per-view",
        interleaved(views_per_call(10**9), views_per_call(CPU_BATCH), args.rounds),
    )
    fast.max_views_per_call = None

    reference.eval(), fast.eval()
    with torch.no_grad():
        report(
            "LCNet inference (eval, no grad)",
            "fast",
            "reference",
            interleaved(lambda: fast(images), lambda: reference(images), args.rounds),
        )

    ref_stack, fast_stack = llcd_stacks(CPU_LLCD)
    q, img, graph = llcd_inputs(CPU_LLCD)
    report(
        "LLCD stack fwd+bwd",
        "fast",
        "reference",
        interleaved(
            lambda: run_stack(fast_stack, q, img, graph).sum().backward(),
            lambda: run_stack(ref_stack, q, img, graph).sum().backward(),
            args.rounds,
        ),
    )


if __name__ == "__main__":
    main()
