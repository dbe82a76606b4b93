"""Merge the GPU benchmark JSON files and turn them into the kernels issue's target tables.

    python benchmarks/gpu_summary.py OUT/bench.json OUT/bench_*.json   # merge, then summarise
    python benchmarks/gpu_summary.py --summary-only OUT/bench.json      # summarise a merged file

gpu_check.sh runs each benchmark file as its own pytest call (a hang or crash in one cannot
lose the others' JSON), so this script merges them into one pytest-benchmark JSON and prints
Markdown ready for BENCHMARKS.md: every figure is a median from that one run, every ratio is
between providers timed side by side in it.

- cross_attention: SDPA against Triton plain and split-KV per LLCD shape and mode: the data
  for `sdpa_is_faster` and `choose_num_kv_splits` in lcnet_fast/ops/cross_attention.py.
- llcd_stack: fused vs eager reference (target >= 2.0x) and vs torch.compile (>= 1.2x).
- crop_views: bytes moved / median time as a share of HBM bandwidth (>= 70 %), and vs the torch
  chain (>= 5x).
- single_image_inference: milliseconds (target <= 8 ms with the CUDA graph).
- backbone_one_call_train_step: one call vs per-view calls (>= 1.3x).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

#: H200 HBM3e peak bandwidth (NVIDIA's figure), the denominator of the crop_views target.
HBM_BYTES_PER_S = 4.8e12
CROP_VIEWS_SHARE_TARGET = 0.70
CROP_VIEWS_CHAIN_TARGET = 5.0
LLCD_EAGER_TARGET = 2.0
LLCD_COMPILE_TARGET = 1.2
SINGLE_IMAGE_MS_TARGET = 8.0
ONE_CALL_TARGET = 1.3
DTYPE_BYTES = {"torch.float32": 4, "torch.bfloat16": 2, "torch.float16": 2}


def merge(paths: list[str]) -> dict:
    """One pytest-benchmark document holding the benchmarks of every readable file."""
    merged: dict | None = None
    for path in paths:
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"skipping {path}: {e}", file=sys.stderr)
            continue
        if merged is None:
            merged = {k: v for k, v in doc.items() if k != "benchmarks"}
            merged["benchmarks"] = []
        merged["benchmarks"].extend(doc.get("benchmarks", []))
    return merged or {"benchmarks": []}


def _info(bench: dict) -> dict:
    """params and extra_info of one benchmark in one dict (extra_info wins: it is typed)."""
    return {**(bench.get("params") or {}), **(bench.get("extra_info") or {})}


def _median_ms(bench: dict) -> float:
    return bench["stats"]["median"] * 1e3


def _by_group(doc: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in doc["benchmarks"]:
        groups[bench.get("group") or ""].append(bench)
    return groups


def _met(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "NOT met"


def cross_attention_table(benches: list[dict]) -> list[str]:
    rows: dict[tuple, dict[str, float]] = defaultdict(dict)
    rule: dict[tuple, int] = {}
    for bench in benches:
        info = _info(bench)
        if info.get("device") != "cuda":
            continue
        key = (tuple(info["shape"]), info["mode"])
        rows[key][info["provider"]] = _median_ms(bench)
        rows[key][info["provider"] + ":splits"] = info.get("kv_splits_measured")
        rule[key] = info.get("kv_splits_rule")
    lines = ["| shape (B, H, Nq, Nk, Dh) | mode | SDPA ms | Triton plain ms | Triton split ms "
             "(splits) | rule's splits | best Triton / SDPA | faster |",
             "|---|---|---|---|---|---|---|---|"]
    for (shape, mode), r in sorted(rows.items()):
        triton = {p: r[p] for p in ("triton-plain", "triton-split") if p in r}
        best = min(triton.values()) if triton else None
        sdpa = r.get("sdpa")
        speedup = f"{sdpa / best:.2f}x" if sdpa and best else "-"
        if sdpa and best:
            winner = "SDPA" if sdpa < best else min(triton, key=triton.get)
        else:
            winner = "-"
        split = (f"{r['triton-split']:.3f} ({r['triton-split:splits']})"
                 if "triton-split" in r else "-")
        lines.append(f"| {shape} | {mode} | {_fmt(sdpa)} | {_fmt(r.get('triton-plain'))} | "
                     f"{split} | {rule.get((shape, mode))} | {speedup} | {winner} |")
    return lines


def _fmt(ms: float | None) -> str:
    return f"{ms:.3f}" if ms is not None else "-"


def llcd_stack_lines(benches: list[dict]) -> list[str]:
    ms = {_info(b).get("kind"): _median_ms(b) for b in benches}
    if "fast" not in ms:
        return ["llcd_stack: no fused measurement"]
    lines = [f"- fused {ms['fast']:.2f} ms"]
    for kind, target in (("reference", LLCD_EAGER_TARGET),
                         ("compiled_reference", LLCD_COMPILE_TARGET)):
        if kind in ms:
            ratio = ms[kind] / ms["fast"]
            lines.append(f"- {kind} {ms[kind]:.2f} ms: fused is {ratio:.2f}x "
                         f"(target >= {target}x: {_met(ratio, target)})")
    return lines


def crop_views_lines(benches: list[dict]) -> list[str]:
    by_dtype: dict[str, dict[str, float]] = defaultdict(dict)
    sizes = {}
    for bench in benches:
        info = _info(bench)
        if info.get("device") != "cuda":
            continue
        by_dtype[info["dtype"]][info["backend"]] = _median_ms(bench)
        sizes[info["dtype"]] = info["shape"]
    lines = []
    for dtype, ms in sorted(by_dtype.items()):
        b, level, size = sizes[dtype]
        views = 1 if level == 1 else level * level + 1
        moved = b * (level * size) ** 2 * 3 + b * views * 3 * size * size * DTYPE_BYTES[dtype]
        for backend, t in sorted(ms.items()):
            share = moved / (t * 1e-3) / HBM_BYTES_PER_S
            line = f"- {dtype} {backend}: {t:.3f} ms, {share:.0%} of HBM peak"
            if backend != "torch":
                line += f" ({_met(share, CROP_VIEWS_SHARE_TARGET)} >= 70 %)"
                if "torch" in ms:
                    ratio = ms["torch"] / t
                    line += (f", {ratio:.1f}x the torch chain "
                             f"({_met(ratio, CROP_VIEWS_CHAIN_TARGET)} >= 5x)")
            lines.append(line)
    return lines


def single_image_lines(benches: list[dict]) -> list[str]:
    lines = []
    for bench in benches:
        mode, t = _info(bench).get("mode"), _median_ms(bench)
        line = f"- {mode}: {t:.2f} ms"
        if mode == "fast_cuda_graph":
            line += f" (target <= 8 ms: {_met(t, SINGLE_IMAGE_MS_TARGET, False)})"
        lines.append(line)
    return lines


def one_call_lines(benches: list[dict]) -> list[str]:
    ms = {_info(b).get("views_per_call"): _median_ms(b) for b in benches}
    if {"one_call", "per_view"} <= ms.keys():
        ratio = ms["per_view"] / ms["one_call"]
        return [f"- one call {ms['one_call']:.1f} ms, per view {ms['per_view']:.1f} ms: "
                f"{ratio:.2f}x (target >= 1.3x: {_met(ratio, ONE_CALL_TARGET)})"]
    return ["- backbone_one_call_train_step: incomplete"]


SECTIONS = {
    "cross_attention": ("cross_attention (bf16, medians)", cross_attention_table),
    "llcd_stack": ("LLCD stack forward+backward", llcd_stack_lines),
    "crop_views": ("crop_views", crop_views_lines),
    "single_image_inference": ("single-image inference", single_image_lines),
    "backbone_one_call_train_step": ("one-call backbone train step", one_call_lines),
}


def summarise(doc: dict) -> str:
    groups = _by_group(doc)
    out = []
    for group, (title, render) in SECTIONS.items():
        if group in groups:
            out += [f"### {title}", "", *render(groups[group]), ""]
    out += ["### every benchmark (median ms)", ""]
    for bench in doc["benchmarks"]:
        out.append(f"- {bench.get('group')} {bench['name']}: {_median_ms(bench):.3f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="merged JSON to write (or read, with --summary-only)")
    p.add_argument("inputs", nargs="*", help="pytest-benchmark JSON files to merge")
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args(argv)
    if args.summary_only:
        doc = merge([args.output])
    else:
        doc = merge(args.inputs)
        with open(args.output, "w") as f:
            json.dump(doc, f, indent=1)
    print(summarise(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
