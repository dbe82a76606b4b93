"""build_transforms per image on one core: eval vs train (augment at the cheaper resolution) vs
train with augment={"resize_first": True} (the old order: resize, then flip + RandAugment on the
output square), from an in-memory 640x480 JPEG, decode included, crop levels 1-3 x 448.

    pytest benchmarks/bench_transforms.py                   # pytest-benchmark, groups below
    python -m benchmarks.bench_transforms [--rounds 12] [--per-round 16] [--output uint8]

Groups `transforms-level<N>` (uint8 output, what the train/evaluate drivers use). Each timed call
decodes the JPEG (PIL, as ``lcnet_fast.data.base.load_image`` does) and runs the pipeline under a
new seed, so the rounds walk through RandAugment's ops instead of timing one draw.

The script form is the figure BENCHMARKS.md quotes: for each crop level it alternates the three
pipelines over the same seeds, round after round, in one process with torch.set_num_threads(1),
and prints the median over rounds of (train time / eval time) for the new and the old train
pipeline, plus the ratio of the totals. Only these ratios mean anything on a shared machine.
"""

import argparse
import io
import statistics
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from lcnet_fast.data import build_transforms

IMAGE_SIZE = 448
CROP_LEVELS = (1, 2, 3)
PIPELINES = ("eval", "train", "train-resize-first")


def photo(h=480, w=640, seed=0) -> torch.Tensor:
    """A photo-like uint8 (3, h, w) image: colour gradients, soft-edged shapes, sensor noise
    (also the test image of tests/data/test_transforms_resolution.py)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([200 * xx + 30, 160 * yy + 50, 120 * (1 - xx * yy) + 40], -1)
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        x1, y1 = x0 + rng.integers(w // 12, w // 3), y0 + rng.integers(h // 12, h // 3)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.0))
    arr = np.asarray(img).astype(np.float64) + rng.normal(0, 6, (h, w, 3))
    return torch.from_numpy(arr.clip(0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()


def photo_jpeg(h=480, w=640, seed=0, quality=90):
    """A COCO-sized photo-like JPEG (`photo`), as bytes."""
    buf = io.BytesIO()
    Image.fromarray(photo(h, w, seed).permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> torch.Tensor:
    """load_image's decode, from memory: PIL -> RGB uint8 (3, H, W) tensor."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        arr = np.asarray(img.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def pipeline(name, crop_level, output="uint8"):
    if name == "eval":
        return build_transforms(False, crop_level, IMAGE_SIZE, output=output)
    augment = {"resize_first": True} if name == "train-resize-first" else None
    return build_transforms(True, crop_level, IMAGE_SIZE, augment=augment, output=output)


@pytest.fixture(scope="module")
def jpeg():
    return photo_jpeg()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("crop_level", CROP_LEVELS)
def test_transform_per_image(benchmark, jpeg, crop_level, name):
    benchmark.group = f"transforms-level{crop_level}"
    transform = pipeline(name, crop_level)
    seeds = iter(range(10**6))

    def fn():
        torch.manual_seed(next(seeds))
        return transform(decode(jpeg))

    out = fn()
    side = crop_level * IMAGE_SIZE
    assert out.shape == (3, side, side) and out.dtype == torch.uint8
    benchmark.extra_info.update(crop_level=crop_level, image_size=IMAGE_SIZE, source="640x480")
    benchmark.pedantic(fn, rounds=12 if crop_level < 3 else 8, iterations=1, warmup_rounds=1)


def interleaved_ratios(crop_level, rounds, per_round, output, data):
    """Per round: the same `per_round` seeds through each pipeline (order rotated every round),
    decode included. Returns {name: per-round seconds} for the three pipelines."""
    transforms = {name: pipeline(name, crop_level, output) for name in PIPELINES}
    for t in transforms.values():  # warm-up: lazy imports, allocator
        torch.manual_seed(0)
        t(decode(data))
    times = {name: [] for name in PIPELINES}
    for r in range(rounds):
        seeds = range(r * per_round, (r + 1) * per_round)
        order = PIPELINES[r % 3 :] + PIPELINES[: r % 3]
        for name in order:
            t = transforms[name]
            start = time.perf_counter()
            for seed in seeds:
                torch.manual_seed(seed)
                t(decode(data))
            times[name].append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=16, help="images (seeds) per round")
    parser.add_argument("--output", choices=("uint8", "float"), default="uint8")
    parser.add_argument("--crop-levels", type=int, nargs="+", default=list(CROP_LEVELS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = photo_jpeg()
    print(
        f"torch {torch.__version__}, 1 thread, 640x480 JPEG, image_size {IMAGE_SIZE}, "
        f"output {args.output}, {args.rounds} rounds x {args.per_round} images"
    )
    for level in args.crop_levels:
        t = interleaved_ratios(level, args.rounds, args.per_round, args.output, data)
        ev, new, old = t["eval"], t["train"], t["train-resize-first"]
        med = lambda xs: statistics.median(xs) / args.per_round * 1e3  # noqa: E731
        ratio = lambda a, b: statistics.median(x / y for x, y in zip(a, b, strict=True))  # noqa: E731
        print(
            f"crop level {level} ({level * IMAGE_SIZE} px): median ms/image eval {med(ev):.1f}, "
            f"train {med(new):.1f}, train-resize-first {med(old):.1f} | median per-round "
            f"train/eval {ratio(new, ev):.2f}x, resize-first/eval {ratio(old, ev):.2f}x, "
            f"resize-first/train {ratio(old, new):.2f}x | totals: train/eval "
            f"{sum(new) / sum(ev):.2f}x, resize-first/eval {sum(old) / sum(ev):.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
