"""``python -m lcnet_fast.experiments cost``: the paper's Tables 9/10 (Appendix B) for the fast
model and the reference, side by side.

For each (LLCD depth, crop level) configuration both models are built with the same weights
(``lcnet_fast.LCNet`` loads ``lcnet_reference.LCNet``'s state_dict) and measured in alternating
rounds in this one process (fast first on even rounds, reference first on odd ones), so machine
noise hits both alike; every figure is a median over rounds, and the ratio is the median of the
per-round reference/fast ratios (> 1: the fast model is faster).

* T-speed: one training step on a batch of ``--batch-size`` images of ``k*M`` px -- zero_grad,
  forward, Asymmetric Loss, backward, AdamW step (train mode).
* I-speed: one image (batch 1) in eval mode under ``torch.inference_mode``.
* Memory: peak bytes during one training step. On CUDA ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats`` (everything allocated: weights, AdamW state, activations). On CPU
  there is no allocator counter, so: bytes of the live weights, buffers, AdamW state and input
  batch, plus the peak growth of the CPU allocator during the step, summed from the profiler's
  allocation events (``torch.profiler``, ``profile_memory=True``) -- the same quantity as the CUDA
  figure. Python's tracemalloc does not see torch's allocations and RSS deltas are polluted by
  the allocator's reuse across configurations, so neither is used.

Outputs (``--output DIR``): ``<stem>.md``, ``<stem>.json`` and ``<stem>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time

import torch

from lcnet_fast.experiments.stats import median

# the paper's Table 9/10 rows: (LLCD layers, crop level)
PAPER_GRID = [(1, 1), (2, 1), (4, 1), (6, 1), (6, 2), (6, 3), (6, 4)]
FULL_GRID = [(d, c) for d in (1, 2, 4, 6) for c in (1, 2, 3, 4)]
# Table 9 (MS-COCO, TResNet-L 448, the authors' GPU): (memory MB, T-speed s, I-speed s)
PAPER_TABLE9 = {
    (1, 1): (11309, 0.341, 0.033),
    (2, 1): (14440, 0.384, 0.043),
    (4, 1): (16248, 0.362, 0.035),
    (6, 1): (18457, 0.367, 0.035),
    (6, 2): (19991, 0.454, 0.055),
    (6, 3): (20784, 0.748, 0.063),
    (6, 4): (23262, 3.425, 0.087),
}
MODELS = ("fast", "reference")


def parse_grid(text: str) -> list[tuple[int, int]]:
    """'paper' | 'full' | '1x1,6x3' (depth x crop level)."""
    if text == "paper":
        return list(PAPER_GRID)
    if text == "full":
        return list(FULL_GRID)
    grid = []
    for item in text.split(","):
        try:
            depth, crop = (int(v) for v in item.strip().lower().split("x"))
        except ValueError:
            raise ValueError(
                f"--grid item {item!r}: expected <depth>x<crop level>, e.g. 6x3"
            ) from None
        if depth < 1 or crop < 1:
            raise ValueError(f"--grid item {item!r}: depth and crop level must be >= 1")
        grid.append((depth, crop))
    return grid


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lcnet_fast.experiments cost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--grid",
        default="paper",
        help="paper (Tables 9/10 rows) | full (depth 1/2/4/6 x crop 1-4) | 1x1,6x3,...",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        help="auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32",
    )
    p.add_argument("--backbone", default="resnet10t", help="timm model (pretrained=False)")
    p.add_argument("--image-size", type=int, default=64, help="view size M; input k*M px")
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--dim-feedforward", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4, help="training batch (T-speed, memory)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds per config")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory pass")
    p.add_argument(
        "--output",
        default=os.path.join("runs", "experiments"),
        help="where <stem>.md/.json/.png go (committed results live in docs/experiments)",
    )
    p.add_argument("--stem", default="", help="output file stem (default cost_<device type>)")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    args.grid_list = parse_grid(args.grid)
    for name in ("image_size", "num_classes", "d_model", "num_heads", "batch_size", "rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    return args


def resolve_device(text: str) -> torch.device:
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(text)


def resolve_dtype(text: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain fp32."""
    if text == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if text == "bf16":
        return torch.bfloat16
    if text == "fp32":
        return None
    raise ValueError(f"--precision must be auto, bf16 or fp32, got {text!r}")


def build_pair(args, depth: int, crop: int, device: torch.device) -> dict[str, torch.nn.Module]:
    """{'fast': ..., 'reference': ...} holding identical weights."""
    import lcnet_reference

    import lcnet_fast

    config = dict(
        backbone=args.backbone,
        pretrained=False,
        crop_level=crop,
        image_size=args.image_size,
        d_model=args.d_model,
        num_heads=args.num_heads,
        num_layers=depth,
        dim_feedforward=args.dim_feedforward,
    )
    torch.manual_seed(0)
    reference = lcnet_reference.LCNet(args.num_classes, **config)
    fast = lcnet_fast.LCNet(args.num_classes, **config)
    fast.load_state_dict(reference.state_dict(), strict=True)
    return {"fast": fast.to(device), "reference": reference.to(device)}


class Bench:
    """One model's train step, single-image inference and memory measurement."""

    def __init__(self, name, model, images, targets, single, device, autocast_dtype):
        import lcnet_reference

        import lcnet_fast

        self.name, self.model, self.device = name, model, device
        self.images, self.targets, self.single = images, targets, single
        self.autocast_dtype = autocast_dtype
        loss_cls = lcnet_fast.AsymmetricLoss if name == "fast" else lcnet_reference.AsymmetricLoss
        self.criterion = loss_cls(gamma_pos=0.0, gamma_neg=4.0, clip=0.05)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self) -> float:
        self.model.train()
        self._sync()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.model(self.images)
        loss = self.criterion(logits.float(), self.targets)
        loss.backward()
        self.optimizer.step()
        self._sync()
        return time.perf_counter() - start

    def infer(self) -> float:
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        with torch.inference_mode(), self._autocast():
            self.model(self.single)
        self._sync()
        return time.perf_counter() - start

    def _state_bytes(self) -> int:
        tensors = list(self.model.state_dict(keep_vars=False).values())
        for state in self.optimizer.state.values():
            tensors += [v for v in state.values() if torch.is_tensor(v)]
        tensors.append(self.images)
        tensors.append(self.targets)
        seen, total = set(), 0
        for t in tensors:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += key[1]
        return total

    def peak_memory_mb(self) -> float:
        """Peak bytes during one training step (see the module docstring), in MB (2**20)."""
        self.train_step()  # AdamW state exists, as in a running training
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.train_step()
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return (self._state_bytes() + cpu_step_peak_growth(self.train_step)) / 2**20


def cpu_step_peak_growth(fn) -> int:
    """Peak growth (bytes) of CPU allocations while fn() runs, from the profiler's memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
    ]
    if not events:
        raise RuntimeError("the profiler recorded no CPU memory events; cannot measure memory")
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def measure_config(args, depth: int, crop: int, device, autocast_dtype) -> dict:
    models = build_pair(args, depth, crop, device)
    side = crop * args.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, side, side, generator=g).to(device)
    targets = (torch.rand(args.batch_size, args.num_classes, generator=g) < 0.2).float().to(device)
    single = images[:1].clone()
    benches = {
        name: Bench(name, models[name], images, targets, single, device, autocast_dtype)
        for name in MODELS
    }
    times = {name: {"train_s": [], "infer_s": []} for name in MODELS}
    for round_index in range(args.warmup + args.rounds):
        order = MODELS if round_index % 2 == 0 else MODELS[::-1]
        for kind, method in (("train_s", "train_step"), ("infer_s", "infer")):
            for name in order:
                seconds = getattr(benches[name], method)()
                if round_index >= args.warmup:
                    times[name][kind].append(seconds)
    row = {
        "num_layers": depth,
        "crop_level": crop,
        "input_size": side,
        "views": 1 if crop == 1 else 1 + crop * crop,
    }
    for name in MODELS:
        row[name] = {kind: median(values) for kind, values in times[name].items()}
        row[name]["samples"] = times[name]
        row[name]["peak_mb"] = None if args.no_memory else benches[name].peak_memory_mb()
    for kind in ("train_s", "infer_s"):
        ratios = [r / f for f, r in zip(times["fast"][kind], times["reference"][kind], strict=True)]
        row[f"{kind}_ratio"] = median(ratios)
    if not args.no_memory:
        row["peak_mb_ratio"] = row["reference"]["peak_mb"] / row["fast"]["peak_mb"]
    if (depth, crop) in PAPER_TABLE9:
        row["paper_table9"] = dict(
            zip(("peak_mb", "train_s", "infer_s"), PAPER_TABLE9[(depth, crop)], strict=True)
        )
    del models, benches
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def memory_note(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated over one train step (all allocations)"
    return (
        "live weights + buffers + AdamW state + batch, plus the peak CPU-allocator growth "
        "during one train step (torch.profiler memory events)"
    )


def markdown(result: dict) -> str:
    s = result["setup"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"{s['device']} ({s['device_name']}), {s['precision']}, torch {s['torch']}, "
        f"torch threads: {s['threads']}; backbone {s['backbone']} (random init), view M = "
        f"{s['image_size']} px (input k*M), d_model {s['d_model']}, {s['num_classes']} classes, "
        f"train batch {s['batch_size']}; median of {s['rounds']} interleaved rounds after "
        f"{s['warmup']} warm-up. Ratio = median of per-round reference/fast (> 1: fast is "
        f"faster / smaller). Memory: {s['memory']}.",
        "",
        "| LLCD | CF | input px | memory MB fast / ref (ratio) | T-speed s fast / ref (ratio) "
        "| I-speed ms fast / ref (ratio) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        f, ref = r["fast"], r["reference"]
        memory = (
            "n/a"
            if f["peak_mb"] is None
            else f"{f['peak_mb']:.0f} / {ref['peak_mb']:.0f} ({r['peak_mb_ratio']:.2f}x)"
        )
        lines.append(
            f"| {r['num_layers']} | {r['crop_level']} | {r['input_size']} | {memory} | "
            f"{f['train_s']:.3f} / {ref['train_s']:.3f} ({r['train_s_ratio']:.2f}x) | "
            f"{f['infer_s'] * 1e3:.1f} / {ref['infer_s'] * 1e3:.1f} ({r['infer_s_ratio']:.2f}x) |"
        )
    return "\n".join(lines) + "\n"


def write_tables(result: dict, paths: list[str]) -> None:
    """result as Markdown (paths[0]) and JSON (paths[1]), each replaced atomically."""
    from lcnet_fast.checkpoint import write_bytes_atomic

    write_bytes_atomic(paths[0], markdown(result).encode("utf-8"))
    write_bytes_atomic(paths[1], (json.dumps(result, indent=2) + "\n").encode("utf-8"))


def run_cost(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    autocast_dtype = resolve_dtype(args.precision, device)
    command = "python -m lcnet_fast.experiments cost " + shlex.join(argv or [])
    setup = {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "precision": "bf16 autocast" if autocast_dtype is not None else "fp32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "backbone": args.backbone,
        "image_size": args.image_size,
        "d_model": args.d_model,
        "num_heads": args.num_heads,
        "dim_feedforward": args.dim_feedforward,
        "num_classes": args.num_classes,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "memory": "not measured" if args.no_memory else memory_note(device),
    }
    rows = []
    result = {"command": command, "setup": setup, "models": list(MODELS), "rows": rows}
    stem = args.stem or f"cost_{device.type}"
    os.makedirs(args.output, exist_ok=True)
    paths = [os.path.join(args.output, f"{stem}.md"), os.path.join(args.output, f"{stem}.json")]
    for depth, crop in args.grid_list:
        start = time.perf_counter()
        rows.append(measure_config(args, depth, crop, device, autocast_dtype))
        # the tables so far, after every configuration: a run cut short (a time limit, a
        # crash in a big configuration) keeps the rows it measured
        write_tables(result, paths)
        r = rows[-1]
        print(
            f"[cost] LLCD {depth} CF {crop}: train {r['fast']['train_s']:.3f} / "
            f"{r['reference']['train_s']:.3f} s, infer {r['fast']['infer_s'] * 1e3:.1f} / "
            f"{r['reference']['infer_s'] * 1e3:.1f} ms (fast / reference) "
            f"[{time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    if not args.no_plot:
        from lcnet_fast.experiments.plots import plot_cost

        paths.append(os.path.join(args.output, f"{stem}.png"))
        plot_cost(result, paths[-1])
    print("\n" + markdown(result))
    print("wrote " + ", ".join(paths), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    run_cost(argv)
    return 0
