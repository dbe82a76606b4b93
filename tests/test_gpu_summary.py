"""benchmarks/gpu_summary.py: merging per-file benchmark JSON and the target arithmetic, on
made-up medians (the GPU figures themselves come only from gpu_check.sh on a GPU)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def summary():
    spec = importlib.util.spec_from_file_location("gpu_summary",
                                                  ROOT / "benchmarks" / "gpu_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(group, name, median_s, params=None, **info):
    """One benchmark as pytest-benchmark writes it: pytest parameters under params (e.g. the
    LLCD stack's kind), whatever the benchmark recorded itself under extra_info."""
    return dict(group=group, name=name, params=params or {}, extra_info=info,
                stats=dict(median=median_s, min=median_s, max=median_s))


def write(path, benchmarks):
    path.write_text(json.dumps({"machine_info": {"node": "x"}, "benchmarks": benchmarks}))
    return str(path)


def test_merge_keeps_every_file_and_skips_broken_ones(summary, tmp_path):
    a = write(tmp_path / "a.json", [bench("g", "one", 1e-3)])
    b = write(tmp_path / "b.json", [bench("g", "two", 2e-3), bench("h", "three", 3e-3)])
    (tmp_path / "broken.json").write_text("{not json")
    merged = summary.merge([a, str(tmp_path / "broken.json"), b, str(tmp_path / "missing")])
    assert [x["name"] for x in merged["benchmarks"]] == ["one", "two", "three"]
    assert merged["machine_info"] == {"node": "x"}
    assert summary.merge([]) == {"benchmarks": []}


def test_target_tables(summary, tmp_path):
    shape = [1, 8, 80, 1960, 96]
    docs = [
        bench("cross_attention", "sdpa", 2e-4, device="cuda", shape=shape, mode="fwd",
              provider="sdpa", kv_splits_measured=None, kv_splits_rule=7),
        bench("cross_attention", "plain", 4e-4, device="cuda", shape=shape, mode="fwd",
              provider="triton-plain", kv_splits_measured=1, kv_splits_rule=7),
        bench("cross_attention", "split", 1e-4, device="cuda", shape=shape, mode="fwd",
              provider="triton-split", kv_splits_measured=7, kv_splits_rule=7),
        bench("llcd_stack", "ref", 30e-3, params={"kind": "reference"}),
        bench("llcd_stack", "compiled", 12e-3, params={"kind": "compiled_reference"}),
        bench("llcd_stack", "fast", 10e-3, params={"kind": "fast"}),
        # 56 images of 1344^2 x 3 uint8 in, 10 views x 3 x 448^2 fp32 out
        bench("crop_views", "torch", 10e-3, device="cuda", shape=[56, 3, 448],
              dtype="torch.float32", backend="torch"),
        bench("crop_views", "cuda", 0.2e-3, device="cuda", shape=[56, 3, 448],
              dtype="torch.float32", backend="cuda"),
        bench("single_image_inference", "graph", 7.5e-3, params={"mode": "fast_cuda_graph"}),
        bench("backbone_one_call_train_step", "one", 100e-3,
              params={"views_per_call": "one_call"}),
        bench("backbone_one_call_train_step", "per", 120e-3,
              params={"views_per_call": "per_view"}),
    ]
    merged = tmp_path / "bench.json"
    assert summary.main([str(merged), write(tmp_path / "in.json", docs)]) == 0
    text = summary.summarise(json.loads(merged.read_text()))
    row = next(line for line in text.splitlines() if line.startswith("| (1, 8, 80, 1960, 96)"))
    assert "| 0.200 | 0.400 | 0.100 (7) | 7 | 2.00x | triton-split |" in row
    assert "fused is 3.00x (target >= 2.0x: met)" in text
    assert "fused is 1.20x (target >= 1.2x: met)" in text
    moved = 56 * 1344 ** 2 * 3 + 56 * 10 * 3 * 448 ** 2 * 4
    share = moved / 0.2e-3 / summary.HBM_BYTES_PER_S
    assert f"cuda: 0.200 ms, {share:.0%} of HBM peak" in text
    assert "50.0x the torch chain (met >= 5x)" in text
    assert "fast_cuda_graph: 7.50 ms (target <= 8 ms: met)" in text
    assert "1.20x (target >= 1.3x: NOT met)" in text
