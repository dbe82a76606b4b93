"""Export a trained LCNet for deployment:
``python -m lcnet_fast.export --checkpoint RUN_OR_FILE --format onnx|torchscript|exported-program
--out FILE``.

The exported model takes what a deployment has after decoding and resizing an image (default
``--input uint8``): a uint8 RGB batch ``(B, 3, S, S)``, ``S = crop_level * image_size``, resized
(antialiased, aspect not kept) the way training did. Scaling to [0, 1] and the run's mean/std
normalisation are inside the model. ``--input float`` takes the normalised float32 batch instead
(what ``LCNet.forward`` takes). Outputs: ``logits`` (B, C) and ``probabilities`` = sigmoid(logits).
The batch dimension is dynamic in every format.

The preprocessing, class names and output names are recorded twice: inside the file (ONNX
``metadata_props`` key ``lcnet_fast``; TorchScript and ExportedProgram extra file
``lcnet_fast.json``) and in a JSON sidecar ``FILE.json``, which also holds the verification result.

Custom ops: the fast model runs ``lcnet_fast::dropout_add_layer_norm`` (C++ on CPU, Triton on GPU)
and, on GPU, the Triton ``lcnet_fast::cross_attention``; ONNX and TorchScript cannot express them.
Export therefore traces the model inside ``reference_ops()`` (lcnet_fast.ops._backend), where every
op runs its pure-PyTorch reference (SDPA, layer_norm: plain aten ops). The maths is the same; the
tests hold the exported models to the PyTorch model.

Verification (on by default): after writing, the file is loaded back (onnxruntime for ONNX) and
run on a seeded random uint8 batch of 3 (the trace used 2, so this also checks the dynamic
batch); ``max |logits_exported - logits_torch| <= tolerance * max(1, max |logits_torch|)`` with
``--tolerance`` default 1e-4, else export fails. The measured error is written to the sidecar.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import torch
from torch import nn

from lcnet_fast.errors import ExportError
from lcnet_fast.ops._backend import reference_ops

__all__ = ["FORMATS", "ExportError", "InferenceWrapper", "export_model", "load_exported",
           "reference_ops"]

FORMATS = ("onnx", "torchscript", "exported-program")
METADATA_KEY = "lcnet_fast"
DEFAULT_TOLERANCE = 1e-4


class InferenceWrapper(nn.Module):
    """uint8 (B, 3, S, S) RGB (or normalised float) -> (logits, probabilities)."""

    def __init__(self, model: nn.Module, mean, std, input_kind: str = "uint8"):
        super().__init__()
        if input_kind not in ("uint8", "float"):
            raise ValueError(f"input_kind must be 'uint8' or 'float', got {input_kind!r}")
        self.model, self.input_kind = model.eval(), input_kind
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor):
        if self.input_kind == "uint8":
            images = (images.to(torch.float32) / 255.0 - self.mean) / self.std
        logits = self.model(images)
        return logits, torch.sigmoid(logits)


def _metadata(model, checkpoint_path: str | None, fmt: str, input_kind: str) -> dict:
    pre = dict(model.preprocess)
    side = int(pre["crop_level"]) * int(pre["image_size"])
    if input_kind == "uint8":
        expects = (f"uint8 RGB (B, 3, {side}, {side}): the image resized (antialiased, aspect "
                   f"not kept) to {side} x {side}; /255 and mean/std normalisation are inside "
                   "the model")
    else:
        expects = (f"float32 (B, 3, {side}, {side}): the resized image scaled to [0, 1] and "
                   "normalised with mean/std")
    import lcnet_fast

    return {
        "format": fmt,
        "input": {"name": "images", "kind": input_kind, "shape": ["B", 3, side, side],
                  "expects": expects},
        "outputs": ["logits", "probabilities"],
        "classes": list(model.classes),
        "preprocess": {**pre, "input_size": side, "resize": "antialiased (bilinear) to "
                       "input_size x input_size, aspect ratio not kept", "channel_order": "RGB"},
        "model_config": {"num_classes": model.num_classes, "crop_level": model.crop_level,
                         "image_size": model.image_size},
        "checkpoint": checkpoint_path,
        "lcnet_fast_version": lcnet_fast.__version__,
        "torch_version": torch.__version__,
    }


def example_batch(side: int, input_kind: str, mean, std, batch: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=generator)
    if input_kind == "uint8":
        return images
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s


def _export_onnx(wrapper, example, out: str, meta: dict, opset: int | None) -> None:
    import onnx

    kwargs = {} if opset is None else {"opset_version": opset}
    with reference_ops(), torch.no_grad():
        program = torch.onnx.export(
            wrapper, (example,), dynamo=True, input_names=["images"],
            output_names=["logits", "probabilities"],
            dynamic_shapes={"images": {0: torch.export.Dim.AUTO}}, verbose=False, **kwargs)
    program.save(out)
    proto = onnx.load(out)
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(meta)})
    onnx.save(proto, out)


def _export_torchscript(wrapper, example, out: str, meta: dict) -> None:
    with reference_ops(), torch.no_grad(), warnings.catch_warnings():
        # the argument checks read shapes in Python; the traced graph keeps the batch dynamic
        # (verified after export), so the tracer's warnings about them are expected
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, (example,), check_trace=False)
    torch.jit.save(traced, out, _extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})


def _export_program(wrapper, example, out: str, meta: dict) -> None:
    with reference_ops(), torch.no_grad():
        program = torch.export.export(wrapper, (example,),
                                      dynamic_shapes={"images": {0: torch.export.Dim.AUTO}})
    torch.export.save(program, out, extra_files={f"{METADATA_KEY}.json": json.dumps(meta)})


def load_exported(path: str, fmt: str | None = None):
    """(callable images -> (logits, probabilities) as torch tensors, metadata dict) for a file
    written by export_model. ONNX runs with onnxruntime on the CPU."""
    fmt = fmt or _format_from_path(path)
    if fmt == "onnx":
        import numpy as np
        import onnx
        import onnxruntime

        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

        def run(images):
            outs = session.run(None, {"images": np.ascontiguousarray(images.cpu().numpy())})
            return tuple(torch.from_numpy(o) for o in outs)

        return run, json.loads(props[METADATA_KEY])
    if fmt == "torchscript":
        extra = {f"{METADATA_KEY}.json": ""}
        module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
        return module, json.loads(extra[f"{METADATA_KEY}.json"])
    if fmt == "exported-program":
        extra = {f"{METADATA_KEY}.json": ""}
        program = torch.export.load(path, extra_files=extra)
        return program.module(), json.loads(extra[f"{METADATA_KEY}.json"])
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")


def _format_from_path(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".onnx"):
        return "onnx"
    if lower.endswith(".pt2"):
        return "exported-program"
    if lower.endswith((".ts", ".torchscript", ".pt", ".jit")):
        return "torchscript"
    raise ValueError(f"cannot tell the format of {path} from its extension (.onnx, .pt2, .ts); "
                     "pass fmt=")


def verify(path: str, fmt: str, wrapper: nn.Module, example: torch.Tensor,
           tolerance: float) -> dict:
    """Run the exported file and the PyTorch model on `example`; compare the logits."""
    run, _ = load_exported(path, fmt)
    with torch.no_grad():
        expected = wrapper(example)[0]
        got = run(example)[0]
    scale = max(1.0, float(expected.abs().max()))
    error = float((got.float() - expected.float()).abs().max())
    result = {"batch": int(example.shape[0]), "max_abs_error": error, "logit_scale": scale,
              "relative_error": error / scale, "tolerance": tolerance,
              "passed": error <= tolerance * scale}
    if not result["passed"]:
        raise ExportError(f"{path}: exported logits differ from PyTorch by {error:.3g} at logit "
                          f"scale {scale:.3g} (allowed {tolerance:g} x scale)")
    return result


def export_model(checkpoint, out: str, fmt: str = "onnx", input_kind: str = "uint8",
                 weights: str | None = None, tolerance: float = DEFAULT_TOLERANCE,
                 check: bool = True, opset: int | None = None) -> dict:
    """Export `checkpoint` (run directory, checkpoint file, or an LCNet from
    ``LCNet.from_pretrained``) to `out`; return the sidecar metadata (also written to out.json)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if isinstance(checkpoint, nn.Module):
        model, source = checkpoint, getattr(checkpoint, "checkpoint_path", None)
        if not hasattr(model, "preprocess") or not hasattr(model, "classes"):
            raise ValueError("export_model needs a model with .classes and .preprocess (use "
                             "LCNet.from_pretrained) or a checkpoint path")
    else:
        from lcnet_fast.inference import load_model

        model = load_model(str(checkpoint), "cpu", weights)
        source = model.checkpoint_path
    model = model.to("cpu").eval()
    pre = model.preprocess
    wrapper = InferenceWrapper(model, pre["mean"], pre["std"], input_kind).eval()
    side = int(pre["crop_level"]) * int(pre["image_size"])
    example = example_batch(side, input_kind, pre["mean"], pre["std"])
    meta = _metadata(model, source, fmt, input_kind)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if fmt == "onnx":
        _export_onnx(wrapper, example, out, meta, opset)
    elif fmt == "torchscript":
        _export_torchscript(wrapper, example, out, meta)
    else:
        _export_program(wrapper, example, out, meta)
    if check:
        # a different batch size than the example traced with: the batch dim must be dynamic
        probe = example_batch(side, input_kind, pre["mean"], pre["std"], batch=3, seed=1)
        meta["verification"] = verify(out, fmt, wrapper, probe, tolerance)
    with open(f"{out}.json", "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
    return meta


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m lcnet_fast.export",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run directory or .safetensors file")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", required=True, help="output file (.onnx, .ts, .pt2)")
    parser.add_argument("--input", choices=("uint8", "float"), default="uint8", dest="input_kind",
                        help="uint8 images with normalisation inside (default) or normalised float")
    parser.add_argument("--weights", choices=("ema", "model"),
                        help="default: the run's reported weights")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="allowed max |logit error| / max(1, max |logit|) (default 1e-4)")
    parser.add_argument("--no-verify", dest="check", action="store_false",
                        help="skip loading the file back and comparing with PyTorch")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = export_model(args.checkpoint, args.out, args.format, args.input_kind, args.weights,
                        args.tolerance, args.check, args.opset)
    line = f"wrote {args.out} ({args.format}, input {args.input_kind}) and {args.out}.json"
    if "verification" in meta:
        v = meta["verification"]
        line += (f"; verified: max |logit error| {v['max_abs_error']:.3g} at logit scale "
                 f"{v['logit_scale']:.3g} (tolerance {v['tolerance']:g} x scale)")
    print(line)
    return 0


def cli() -> int:
    from lcnet_fast.engine.cli import run_cli

    return run_cli(main, extra_errors=(ExportError,))


if __name__ == "__main__":
    sys.exit(cli())
