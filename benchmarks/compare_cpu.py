"""Interleaved A/B timings in one process (this machine is noisy: only paired ratios count).

    python -m benchmarks.compare_cpu [--rounds 15] [--only model|llcd]

Prints, for each comparison, the median time of A and B over alternating rounds and the median of
the per-round ratio B/A (> 1: A is faster) with the range of the per-round ratios.
"model": the whole LCNet (benchmarks/models.py CPU_MODEL); "llcd": the LLCD stack alone, fast vs
reference, at the benchmark's small shape, the main job's shape and issue 13's wide shape, in
train mode (forward+backward) and eval mode (forward under inference_mode).
"""

import argparse
import statistics
import time

import torch

from benchmarks.models import (
    CPU_BATCH,
    CPU_LLCD,
    CPU_MODEL,
    MAIN_JOB_LLCD,
    WIDE_LLCD,
    llcd_inputs,
    llcd_stacks,
    model_pair,
    run_stack,
)


def interleaved(fn_a, fn_b, rounds):
    """Median time of A, of B, median per-round B/A and (min, max) of it; A and B alternate
    which goes first, so a slow spell of the machine lands on both."""
    fn_a(), fn_b()  # warm-up
    times_a, times_b, ratios = [], [], []
    for i in range(rounds):
        order = ((fn_a, times_a), (fn_b, times_b))
        for fn, acc in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - start)
        ratios.append(times_b[-1] / times_a[-1])
    return (
        statistics.median(times_a),
        statistics.median(times_b),
        statistics.median(ratios),
        (min(ratios), max(ratios)),
    )


def report(name, label_a, label_b, result):
    a, b, ratio, (low, high) = result
    print(
        f"{name:<58} {label_a}: {a * 1e3:8.2f} ms   {label_b}: {b * 1e3:8.2f} ms   "
        f"median({label_b}/{label_a}) = {ratio:.2f}x ({low:.2f}-{high:.2f})",
        flush=True,
    )


def compare_models(rounds):
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
        interleaved(train_step(fast), train_step(reference), rounds),
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
        interleaved(views_per_call(10**9), views_per_call(CPU_BATCH), rounds),
    )
    fast.max_views_per_call = None

    reference.eval(), fast.eval()
    with torch.no_grad():
        report(
            "LCNet inference (eval, no grad)",
            "fast",
            "reference",
            interleaved(lambda: fast(images), lambda: reference(images), rounds),
        )


LLCD_CASES = (  # (name, shape, dropout)
    ("small", CPU_LLCD, 0.1),
    ("main job", MAIN_JOB_LLCD, 0.0),
    ("main job, dropout 0.1", MAIN_JOB_LLCD, 0.1),
    ("wide (issue 13)", WIDE_LLCD, 0.1),
)


def compare_llcd(name, shape, dropout, rounds):
    ref_stack, fast_stack = llcd_stacks(shape, dropout=dropout)
    q, img, graph = llcd_inputs(shape)
    size = "B{batch} N{labels} T{tokens} d{d_model} H{num_heads}".format(**shape)

    def train(stack, skip_last_kv=False):
        return lambda: run_stack(stack, q, img, graph, skip_last_kv).sum().backward()

    def infer(stack, skip_last_kv=False):
        def forward():
            with torch.inference_mode():
                run_stack(stack, q, img, graph, skip_last_kv)

        return forward

    def both_ways(title, make):
        """The row with all outputs on both sides, then the row as each model runs its decoder."""
        report(title, "fast", "reference", interleaved(make(fast_stack), make(ref_stack), rounds))
        report(
            "  as in the models (fast skips the last layer's KV)",
            "fast",
            "reference",
            interleaved(make(fast_stack, skip_last_kv=True), make(ref_stack), rounds),
        )

    ref_stack.train(), fast_stack.train()
    both_ways(f"LLCD fwd+bwd, train, {name} ({size}, p {dropout})", train)
    ref_stack.eval(), fast_stack.eval()  # (dropout is off in eval: one eval row per shape)
    if dropout == 0.0 or shape is not MAIN_JOB_LLCD:
        both_ways(f"LLCD forward, eval, {name} ({size})", infer)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", choices=("model", "llcd"), help="one group of comparisons")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.only in (None, "model"):
        compare_models(args.rounds)
    if args.only in (None, "llcd"):
        for name, shape, dropout in LLCD_CASES:
            compare_llcd(name, shape, dropout, args.rounds)


if __name__ == "__main__":
    main()
