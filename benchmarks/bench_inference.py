"""Inference throughput (images/s), one process, interleaved rounds: the fast LCNet eager (NCHW and
channels-last) vs the reference LCNet with the same weights vs the torch.compile'd fast LCNet, in
eval mode under torch.inference_mode; then the end-to-end Predictor path (resize + crop_views +
model, from uint8 images), eager vs compiled.

    python -m benchmarks.bench_inference --rounds 10 [--device cuda] [--configs main,resnet50]

Each round runs every variant of a case once, in a fixed order, the fast eager NCHW model first;
a variant's ratio is its per-round throughput over that round's fast eager NCHW throughput (> 1:
faster), reported as median and min-max over rounds. Absolute images/s on a shared machine are
scale only. Inputs: the reference takes the normalised (B, 3, S, S) images (it cuts its own
views); the fast variants take crop_views' (B, V, 3, M, M) views, channels-last ones re-stored
NHWC view-major inside the timed call (as Predictor.batch does). The compiled variant compiles
the model in the layout the Predictor uses on the device (channels-last on CPU, NCHW on CUDA);
its first call (the compilation) is timed apart, with inductor's on-disk cache in a fresh
directory unless --warm-cache, so the figure is a first run's.
"""

import argparse
import copy
import os
import statistics
import tempfile
import time

import torch

from benchmarks.compare_cpu import interleaved
from benchmarks.models import model_pair

# The trainer's default model (the main job): python -m lcnet_fast.train with no options.
MAIN_JOB = dict(backbone="test_resnet", crop_level=2, image_size=64, d_model=128, num_heads=4,
                num_layers=2, dim_feedforward=256, dropout=0.0, llcd_reading="residual",
                token_norm=True)
CONFIGS = {  # name: (model config, batch sizes)
    "main": (MAIN_JOB, (16, 1)),
    # a resnet50 backbone at the largest size whose rounds stay a few seconds on 2 CPU cores:
    # crop level 2 x 128 px (20 backbone views of 128 px per batch of 4)
    "resnet50": (dict(MAIN_JOB, backbone="resnet50", image_size=128), (4,)),
}
NUM_CLASSES = 10
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PHOTO = (480, 640)  # end-to-end source images: COCO-sized uint8 (3, H, W)


def recorded(fn, times, sync):
    """fn, appending each call's seconds to `times` (after a CUDA sync when `sync`)."""

    def call():
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)

    return call


def race(variants, rounds, sync):
    """{name: [seconds per round]} of interleaved rounds; the first variant is the baseline, the
    others run in an order rotated each round (so no variant always runs right after the same
    one). benchmarks.compare_cpu.interleaved runs the rounds, alternating whether the baseline or
    the others go first (its warm-up call is dropped here)."""
    times = {name: [] for name in variants}
    calls = [recorded(fn, times[name], sync) for name, fn in variants.items()]
    others, turn = calls[1:], [0]

    def the_others():
        shift = turn[0] % len(others)
        for call in others[shift:] + others[:shift]:
            call()
        turn[0] += 1

    interleaved(calls[0], the_others, rounds)
    return {name: values[1:] for name, values in times.items()}


def max_differences(variants, precision, limit):
    """{name: max |output - first variant's output|}; over `limit` is an error at fp32 (the
    variants must compute the same function), only printed under bf16 autocast."""
    outputs = {name: fn().float() for name, fn in variants.items()}
    base = next(iter(outputs.values()))
    diffs = {name: (out - base).abs().max().item() for name, out in outputs.items()}
    wrong = {name: d for name, d in diffs.items() if d > limit}
    if wrong and precision == "fp32":
        raise AssertionError(f"outputs differ from the first variant's by more than {limit}: "
                             f"{wrong}")
    return diffs


def report(title, batch, times, warmups, diffs, pairs=()):
    base = times[next(iter(times))]
    print(f"\n{title}", flush=True)
    print(f"{'variant':<28} {'images/s median (min-max)':>28} "
          f"{'x fast eager median (min-max)':>32} {'max |diff|':>11}")
    for name, values in times.items():
        rates = [batch / t for t in values]
        ratios = [b / t for b, t in zip(base, values, strict=True)]
        line = (f"{name:<28} {statistics.median(rates):9.1f} ({min(rates):.1f}-{max(rates):.1f})"
                f"{statistics.median(ratios):14.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
                f"{diffs[name]:12.1e}")
        if name in warmups:
            line += f"   first call (compile) {warmups[name]:.1f} s"
        print(line, flush=True)
    for slow, fast in pairs:  # the same per-round ratio between two non-baseline variants
        ratios = [a / b for a, b in zip(times[slow], times[fast], strict=True)]
        print(f"  {fast} / {slow}: {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) faster", flush=True)


def first_call_seconds(fn, sync):
    start = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def model_case(name, config, batch, device, precision, rounds, compile_layout_nhwc):
    from lcnet_fast.device import autocast
    from lcnet_fast.inference import channels_last_views
    from lcnet_fast.ops.crop_views import crop_views

    sync = device.type == "cuda"
    reference, fast = model_pair(num_classes=NUM_CLASSES, device=device, **config)
    reference.eval(), fast.eval()
    fast_cl = copy.deepcopy(fast).to(memory_format=torch.channels_last)
    compiled_model = fast_cl if compile_layout_nhwc else fast
    compiled = torch.compile(compiled_model, dynamic=False)
    level, size = config["crop_level"], config["image_size"]
    pixels = torch.randint(0, 256, (batch, level * size, level * size, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).to(device)
    views = crop_views(pixels, level, size, MEAN, STD)  # (B, V, 3, M, M)
    images = ((pixels.permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN, device=device)
               .view(3, 1, 1)) / torch.tensor(STD, device=device).view(3, 1, 1)).contiguous()
    relayout = channels_last_views if compile_layout_nhwc else (lambda v: v)
    variants = {
        "fast eager": lambda: fast(views),
        "fast eager channels-last": lambda: fast_cl(channels_last_views(views)),
        "reference eager": lambda: reference(images),
        "fast compiled": lambda: compiled(relayout(views)),
    }
    if device.type == "cuda":  # the Predictor's other CUDA option: one captured graph
        from lcnet_fast.cuda_graph import CudaGraphForward

        graph = CudaGraphForward(fast, autocast_dtype=torch.bfloat16 if precision == "bf16"
                                 else None, input_shape=tuple(views.shape))
        variants["fast CUDA graph"] = lambda: graph(views)
    with torch.inference_mode(), autocast(device, precision):
        warmups = {"fast compiled": first_call_seconds(variants["fast compiled"], sync)}
        diffs = max_differences(variants, precision, 1e-3)  # logits
        times = race(variants, rounds, sync)
    layout = "channels-last" if compile_layout_nhwc else "NCHW"
    report(f"{name}: {config['backbone']}, crop level {level} x {size} px, batch {batch}, "
           f"{precision} (compiled: {layout}; max |diff| of the logits)", batch, times, warmups,
           diffs, [("fast eager channels-last" if compile_layout_nhwc else "fast eager",
                    "fast compiled"), ("reference eager", "fast eager channels-last")])


def predictor_case(config, batch, device, precision, rounds):
    from lcnet_fast.inference import Predictor

    sync = device.type == "cuda"
    _, fast = model_pair(num_classes=NUM_CLASSES, device=device, **config)
    preprocess = dict(crop_level=config["crop_level"], image_size=config["image_size"],
                      mean=list(MEAN), std=list(STD))
    classes = [str(i) for i in range(NUM_CLASSES)]

    def predictor(**options):
        return Predictor(copy.deepcopy(fast), classes, preprocess, device, precision, batch,
                         cuda_graph=False, **options)

    generator = torch.Generator().manual_seed(0)
    photos = [torch.randint(0, 256, (3, *PHOTO), dtype=torch.uint8, generator=generator)
              for _ in range(batch)]
    predictors = {"Predictor eager NCHW": predictor(channels_last=False),
                  "Predictor eager (auto)": predictor(),
                  "Predictor compiled (auto)": predictor(compile=True)}
    variants = {name: (lambda p=p: p.probabilities(photos)) for name, p in predictors.items()}
    warmups = {"Predictor compiled (auto)":
               first_call_seconds(variants["Predictor compiled (auto)"], sync)}
    diffs = max_differences(variants, precision, 1e-4)  # probabilities
    times = race(variants, rounds, sync)
    layout = "channels-last" if predictors["Predictor eager (auto)"].channels_last else "NCHW"
    report(f"end to end: Predictor.probabilities({batch} uint8 3x{PHOTO[0]}x{PHOTO[1]} images), "
           f"{config['backbone']}, {precision} (auto layout: {layout}; max |diff| of the "
           "probabilities; the compiled graph may come from the model case's cache)", batch,
           times, warmups, diffs, [("Predictor eager (auto)", "Predictor compiled (auto)")])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 autocast on CUDA, fp32 on CPU (the Predictor's default)")
    parser.add_argument("--configs", default="main,resnet50",
                        help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--batches", help="comma-separated batch sizes instead of each "
                        "config's own (main: 16,1; resnet50: 4); the first also sizes the "
                        "end-to-end case")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's usual on-disk cache (default: a fresh one)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown or args.rounds < 1:
        parser.error(f"unknown config(s) {unknown}" if unknown else "--rounds must be >= 1")
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_inference_")
    from lcnet_fast.device import resolve_precision
    from lcnet_fast.inference import resolve_channels_last

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    nhwc = resolve_channels_last("auto", device)
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "default")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"rounds {args.rounds}, inductor cache {cache}", flush=True)
    for name in args.configs.split(","):
        config, batches = CONFIGS[name]
        if args.batches:
            batches = tuple(int(b) for b in args.batches.split(","))
        for batch in batches:
            model_case(name, config, batch, device, precision, args.rounds, nhwc)
        if name == "main":
            predictor_case(config, batches[0], device, precision, args.rounds)


if __name__ == "__main__":
    main()
