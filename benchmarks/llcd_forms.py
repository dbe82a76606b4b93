"""The evidence for `absorbs` (lcnet_fast/models/absorbed_attention.py): the fast LLCD stack with
its attentions projected vs absorbed, over decoder shapes, one process, interleaved rounds.

    python -m benchmarks.llcd_forms [--rounds 9] [--threads 1]

For each shape (batch B, labels N, image tokens T, width d, heads H; 2 layers, FFN 2d, dropout 0)
prints the work ratio absorbed/projected (`work_ratio`), what the rule picks, and the median
per-round time ratio projected/absorbed (> 1: absorbed is faster) with its range, for a train
step (forward+backward) and an eval forward under inference_mode.
"""

import argparse

import torch

import lcnet_fast.models.llcd as llcd
from benchmarks.compare_cpu import interleaved
from benchmarks.models import llcd_inputs, llcd_stacks, run_stack
from lcnet_fast.models.absorbed_attention import absorbs, work_ratio

SHAPES = (  # (B, N, T, d, H): the main job, the benchmark's small and wide shapes, a spread
    (32, 10, 20, 128, 4),
    (4, 20, 80, 128, 4),
    (16, 20, 40, 128, 4),
    (8, 10, 80, 128, 4),
    (8, 20, 160, 128, 4),
    (8, 10, 320, 128, 4),
    (8, 20, 80, 256, 8),
    (8, 20, 320, 256, 8),
    (8, 20, 1280, 256, 8),
    (8, 80, 320, 256, 8),
    (2, 80, 1280, 256, 8),
    (2, 80, 980, 768, 8),
)


def compare(batch, labels, tokens, d, heads, rounds):
    shape = dict(
        batch=batch,
        labels=labels,
        tokens=tokens,
        d_model=d,
        num_heads=heads,
        num_layers=2,
        dim_feedforward=2 * d,
    )
    _, stack = llcd_stacks(shape, dropout=0.0)
    q, img, graph = llcd_inputs(shape)

    def step(absorbed, train):
        def run():
            llcd.absorbs = lambda *args: absorbed
            if train:
                run_stack(stack, q, img, graph).sum().backward()
            else:
                with torch.inference_mode():
                    run_stack(stack, q, img, graph)

        return run

    picked = absorbs(heads, labels, tokens, d, torch.device("cpu"))
    work = work_ratio(heads, labels, tokens, d)
    line = (
        f"B{batch:<3} N{labels:<3} T{tokens:<5} d{d:<4} H{heads}  work {work:.2f}"
        f"  rule: {'absorbed ' if picked else 'projected'}"
    )
    try:
        for train in (True, False):
            stack.train(train)
            _, _, ratio, (low, high) = interleaved(step(True, train), step(False, train), rounds)
            line += f"  {'train' if train else 'eval'} {ratio:.2f}x ({low:.2f}-{high:.2f})"
    finally:
        llcd.absorbs = absorbs
    print(line, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("time ratio = projected / absorbed (> 1: absorbed faster), median (range) of rounds")
    for shape in SHAPES:
        compare(*shape, args.rounds)


if __name__ == "__main__":
    main()
