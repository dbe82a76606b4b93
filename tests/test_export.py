"""python -m lcnet_fast.export: ONNX (run with onnxruntime), TorchScript and ExportedProgram files
that match the PyTorch model, with the preprocessing recorded in the file and a JSON sidecar.

Tolerance: max |logits_exported - logits_torch| <= 1e-4 * max(1, max |logits_torch|) (fp32; the
exported graphs run the ops' pure-PyTorch references, so only float reassociation differs;
measured ~1e-6 here)."""

import json
import sys

import pytest
import torch

import lcnet_fast
from lcnet_fast.export import export_model, load_exported, main
from lcnet_fast.inference import save_pretrained
from lcnet_fast.ops import _backend

CLASSES = ["cat", "dog", "car"]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = lcnet_fast.LCNet(len(CLASSES), backbone="test_resnet", crop_level=2, image_size=32,
                             d_model=32, num_heads=4, num_layers=2, dim_feedforward=48)
    path = tmp_path_factory.mktemp("export") / "tiny.safetensors"
    save_pretrained(model, path, CLASSES, preprocess={
        "crop_level": 2, "image_size": 32, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]})
    return str(path)


def normalise(model, images_uint8):
    mean = torch.tensor(model.preprocess["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocess["std"]).view(1, 3, 1, 1)
    return (images_uint8.float() / 255 - mean) / std


def uint8_batch(batch, seed):
    return torch.randint(0, 256, (batch, 3, 64, 64), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


# torchscript takes the normalised float batch (--input float); the others uint8 images
@pytest.mark.parametrize("fmt,suffix,kind", [("onnx", "onnx", "uint8"),
                                             ("torchscript", "ts", "float"),
                                             ("exported-program", "pt2", "uint8")])
def test_exported_model_matches_pytorch(checkpoint, tmp_path, fmt, suffix, kind):
    out = str(tmp_path / f"model.{suffix}")
    if fmt == "onnx":  # the CLI path, with its own verification on
        assert main(["--checkpoint", checkpoint, "--format", fmt, "--out", out]) == 0
    else:
        export_model(checkpoint, out, fmt, input_kind=kind, check=False)
    model = lcnet_fast.LCNet.from_pretrained(checkpoint)
    run, meta = load_exported(out)
    for batch, seed in ((1, 3), (4, 4)):  # neither is the traced batch (2): dynamic batch dim
        images = uint8_batch(batch, seed)
        with torch.no_grad():
            expected = model(normalise(model, images))
        logits, probabilities = run(images if kind == "uint8" else normalise(model, images))
        scale = max(1.0, expected.abs().max().item())
        error = (logits - expected).abs().max().item()
        assert error <= TOLERANCE * scale, f"{fmt}: logits differ by {error:.3g} at {scale:.3g}"
        torch.testing.assert_close(probabilities, torch.sigmoid(logits), rtol=0, atol=1e-6)
    with open(f"{out}.json") as handle:
        sidecar = json.load(handle)
    assert meta["classes"] == sidecar["classes"] == CLASSES
    assert meta["preprocess"] == sidecar["preprocess"]
    assert meta["preprocess"]["mean"] == [0.5, 0.4, 0.3] and meta["preprocess"]["input_size"] == 64
    assert meta["input"]["kind"] == kind and meta["outputs"] == ["logits", "probabilities"]
    if fmt == "onnx":
        assert sidecar["verification"]["passed"]
        assert sidecar["verification"]["relative_error"] <= TOLERANCE


def test_reference_ops_mode_removes_the_custom_ops(checkpoint, monkeypatch):
    """Inside reference_ops() no custom op is traced. (In eval on CPU `auto` runs aten ops only,
    SDPA and, without a mask, layer_norm; the AddNorm's C++ op is switched back on here so that
    there is a custom op to remove.)"""
    from lcnet_fast.export import InferenceWrapper

    has_cpp = _backend.unavailable_reason("cpp", "dropout_add_layer_norm", "cpu") is None
    monkeypatch.setattr(
        sys.modules["lcnet_fast.ops.dropout_add_layer_norm"],
        "AUTO_CPU_REFERENCE_WITHOUT_MASK",
        False,
    )

    model = lcnet_fast.LCNet.from_pretrained(checkpoint)
    wrapper = InferenceWrapper(model, model.preprocess["mean"], model.preprocess["std"]).eval()
    example = uint8_batch(2, 0)

    def custom_ops(program):
        return {str(node.target) for node in program.graph.nodes
                if node.op == "call_function" and "lcnet_fast" in str(node.target)}

    with _backend.reference_ops():
        assert _backend.reference_ops_enabled() and _backend.requested_backend() == "torch"
        with _backend.reference_ops():
            pass
        assert _backend.reference_ops_enabled()  # nesting restores the outer mode
        assert custom_ops(torch.export.export(wrapper, (example,))) == set()
    assert not _backend.reference_ops_enabled()
    if has_cpp:
        # outside the block the forced C++ op is traced, which ONNX / TorchScript could not express
        assert any("dropout_add_layer_norm" in t
                   for t in custom_ops(torch.export.export(wrapper, (example,))))


def test_bad_format_and_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        main(["--checkpoint", "x", "--format", "tflite", "--out", str(tmp_path / "m")])
    from lcnet_fast.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--out",
              str(tmp_path / "m.onnx")])
