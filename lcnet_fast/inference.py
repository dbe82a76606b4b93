"""Inference from a trained run, in three lines::

    import lcnet_fast
    predictor = lcnet_fast.Predictor.from_pretrained("runs/coco")   # run dir or .safetensors file
    predictor("photo.jpg")          # {label: probability}, every class, most probable first

``predictor(image, threshold=0.5)`` keeps the labels at or above the threshold, ``top_k=K`` the K
most probable; a list of images gives a list of dicts. An image is a file path, a PIL image, a
uint8 ``(3, H, W)`` tensor or a uint8 ``(H, W, 3)`` numpy array (RGB). Each image is preprocessed
exactly as the run recorded in its checkpoint: resized (antialiased, aspect not kept) to the
``crop_level * image_size`` square, scaled to [0, 1] and normalised with the run's mean/std.
``predictor.probabilities(images)`` returns the ``(n, C)`` tensor instead.

The hot path: the resized images travel to the device as uint8 (a quarter of float32's bytes)
and ``lcnet_fast.ops.crop_views`` scales, normalises and cuts them into the Crop-Forwarding views
in one pass (C++ on CPU, CUDA on GPU); the model takes the views directly. On a GPU the whole
forward is also replayed from a CUDA graph (``cuda_graph="auto"``), captured once per batch size
met (at most two in a run: ``batch_size`` and the last, smaller batch).

On the CPU the backbone runs channels-last (``channels_last="auto"``): its conv weights are
converted and the views are stored view-major NHWC, so the backbone's view-major flatten is a free
view and every convolution gets NHWC input (measured faster on CPU: BENCHMARKS.md, "Inference
(CPU)"; unmeasured on a GPU, so off there unless asked). ``compile=True`` wraps the forward in
``torch.compile`` (opt-in: its first call per batch size compiles, tens of seconds on a small
CPU; see ``Predictor``).

``lcnet_fast.LCNet.from_pretrained(path)`` (= :func:`load_model`) gives just the model, in eval
mode, with ``model.classes`` and ``model.preprocess`` attached. ``python -m lcnet_fast.predict``
is the command-line front end of :class:`Predictor`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lcnet_fast.checkpoint import CheckpointError, load_checkpoint
from lcnet_fast.cuda_graph import CudaGraphForward
from lcnet_fast.device import DeviceViews, autocast, pick_device, resolve_precision
from lcnet_fast.errors import BackendUnavailableError
from lcnet_fast.model_config import model_from_checkpoint
from lcnet_fast.models import LCNet

__all__ = ["Predictor", "infer_model_config", "load_model", "preprocess_transform",
           "resize_transform", "save_pretrained", "to_uint8_chw"]


def load_model(path: str, device: torch.device | str = "cpu", weights: str | None = None):
    """The LCNet of a run directory or checkpoint file (see ``LCNet.from_pretrained``).

    Returns the model in eval mode on `device` with the run's reported weights (`weights` =
    "ema" or "model" to choose), and attaches ``classes``, ``preprocess`` and
    ``checkpoint_path``. Errors (no checkpoint, not an lcnet_fast checkpoint, weights missing,
    state_dict mismatch) raise CheckpointError with the reason.
    """
    checkpoint = load_checkpoint(str(path))
    if weights and not checkpoint.has(weights):
        raise CheckpointError(f"{checkpoint.path} holds no {weights!r} weights")
    model = model_from_checkpoint(checkpoint, torch.device(device), weights=weights)
    model.classes = checkpoint.classes
    model.preprocess = dict(checkpoint.meta["preprocess"])
    model.checkpoint_path = checkpoint.path
    return model


def _lcnet_from_pretrained(
    cls, path: str, device: torch.device | str = "cpu", weights: str | None = None
) -> torch.nn.Module:
    """The model of a run directory (its best, else last checkpoint) or checkpoint file written
    by ``python -m lcnet_fast.train``, in eval mode on `device`, with the run's reported weights
    (`weights="ema"|"model"` to choose). Attached: ``model.classes`` (class names, logit
    order), ``model.preprocess`` (crop_level, image_size, input_size, mean, std) and
    ``model.checkpoint_path``. See lcnet_fast.inference.Predictor for images -> labels."""
    return load_model(path, device, weights)


# Reading checkpoints is the inference layer's job (models/ read no files and import nothing above
# them), so the method is attached here; see the LCNet class docstring.
_lcnet_from_pretrained.__name__ = "from_pretrained"
_lcnet_from_pretrained.__qualname__ = "LCNet.from_pretrained"
LCNet.from_pretrained = classmethod(_lcnet_from_pretrained)


def infer_model_config(model: torch.nn.Module, backbone_kwargs: dict | None = None) -> dict:
    """The recorded-model-config dict (LCNet constructor arguments + label_embedding_dim, as the
    train driver records it) read off a built LCNet. backbone_kwargs (e.g. drop_path_rate) cannot
    be read back and default to {}; they do not change the state_dict."""
    from lcnet_fast.models import PooledClassifier

    if isinstance(model, PooledClassifier):
        return {
            "arch": "pooled",
            "num_classes": model.num_classes,
            "backbone": model.body.pretrained_cfg["architecture"],
            "pretrained": False,
            "crop_level": 1,
            "image_size": model.image_size,
            "backbone_kwargs": dict(backbone_kwargs or {}),
            "label_embedding_dim": 0,
        }
    layer = model.decoder[0]
    graph = model.label_graph
    body = model.backbone.body
    return {
        "arch": "lcnet",
        "llcd_reading": layer.reading,
        "token_norm": model.backbone.token_norm is not None,
        "position_encoding": model.view_embed is not None,
        "num_classes": model.num_classes,
        "backbone": body.pretrained_cfg["architecture"],
        "pretrained": False,
        "crop_level": model.crop_level,
        "image_size": model.image_size,
        "d_model": model.query_embed.embedding_dim,
        "num_heads": layer.mha1.num_heads,
        "num_layers": len(model.decoder),
        "dim_feedforward": layer.mlp[0].out_features,
        "dropout": layer.dropout.p,
        "num_gat_layers": len(graph.gat) if graph.use_graph else 1,
        "use_graph": graph.use_graph,
        "mirror_inputs": model.mirror_inputs,
        "backbone_kwargs": dict(backbone_kwargs or {}),
        "max_views_per_call": model.max_views_per_call,
        "label_embedding_dim": graph.label_embeddings.shape[1],
    }


def save_pretrained(model: torch.nn.Module, path: str, classes: Sequence[str] | None = None,
                    preprocess: dict | None = None, model_config: dict | None = None) -> str:
    """Write `model` as a weights-only lcnet_fast checkpoint (the format the train driver writes,
    through lcnet_fast.checkpoint) that ``LCNet.from_pretrained``/``Predictor.from_pretrained``,
    evaluate, predict, export and visualize read. classes default to ``model.classes`` (else
    "0".."C-1"), preprocess to ``model.preprocess`` (else ImageNet mean/std at the model's crop
    level and view size), model_config to :func:`infer_model_config`. Returns the path."""
    from lcnet_fast.checkpoint import save_checkpoint
    from lcnet_fast.data import IMAGENET_MEAN, IMAGENET_STD

    classes = list(classes or getattr(model, "classes", None)
                   or [str(i) for i in range(model.num_classes)])
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.num_classes} "
                         "classes")
    preprocess = dict(preprocess or getattr(model, "preprocess", None) or {
        "crop_level": model.crop_level, "image_size": model.image_size,
        "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    preprocess.setdefault("input_size", int(preprocess["crop_level"]) * int(
        preprocess["image_size"]))
    meta = {"kind": "weights", "classes": classes,
            "model_config": model_config or infer_model_config(model),
            "preprocess": preprocess, "weights": "model", "holds_ema": False}
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    save_checkpoint(str(path), tensors, meta)
    return str(path)


def resize_transform(preprocess: dict):
    """image -> uint8 (3, S, S), S = crop_level * image_size (antialiased resize, as training)."""
    from torchvision.transforms import v2

    side = int(preprocess["crop_level"]) * int(preprocess["image_size"])
    return v2.Compose([v2.ToImage(), v2.Resize((side, side), antialias=True)])


def preprocess_transform(preprocess: dict):
    """image -> normalised float32 (3, S, S): the evaluation pipeline the run was trained with."""
    from lcnet_fast.data import build_transforms

    return build_transforms(
        train=False,
        crop_level=preprocess["crop_level"],
        image_size=preprocess["image_size"],
        mean=preprocess["mean"],
        std=preprocess["std"],
    )


def to_uint8_chw(image: Any):
    """A path, PIL image, uint8 (3, H, W) tensor or uint8 (H, W, 3) array -> what the torchvision
    transforms take (uint8 (3, H, W) tensor or PIL image); clear errors otherwise."""
    from lcnet_fast.data import load_image

    if isinstance(image, (str, os.PathLike)):
        return load_image(os.fspath(image))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(
                f"a numpy image must be uint8 (H, W, 3) RGB, got dtype {image.dtype} shape "
                f"{image.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(
                f"a tensor image must be uint8 (3, H, W) RGB, got dtype {image.dtype} shape "
                f"{tuple(image.shape)}"
            )
        return image
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return image.convert("RGB")
    raise TypeError(
        "an image must be a file path, a PIL image, a uint8 (3, H, W) tensor or a uint8 "
        f"(H, W, 3) numpy array, got {type(image).__name__}"
    )


def compile_failure(exc: BaseException) -> BackendUnavailableError:
    """One line for a failed torch.compile (e.g. no working C++ compiler for inductor on the
    CPU): dynamo wraps the cause, whose first line is the useful one; the caller chains `exc`."""
    cause = getattr(exc, "inner_exception", None) or exc
    lines = str(cause).strip().splitlines()
    first = lines[0] if lines else ""
    return BackendUnavailableError(
        f"torch.compile failed ({type(cause).__name__}: {first}); "
        "run without --compile (Predictor(compile=False))")


def resolve_cuda_graph(cuda_graph: bool | str, device: torch.device,
                       compile: bool = False) -> bool:
    """"auto" -> capture CUDA graphs on CUDA devices unless `compile`; True on another device,
    or together with compile=True, is an error (one forward wrapper at a time: capturing a
    compiled forward in CudaGraphForward is untested)."""
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    if cuda_graph == "auto":
        return device.type == "cuda" and not compile
    if not isinstance(cuda_graph, bool):
        raise ValueError(f'cuda_graph must be "auto", True or False, got {cuda_graph!r}')
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs a CUDA device, the predictor is on {device}")
    if cuda_graph and compile:
        raise ValueError("compile=True and cuda_graph=True: choose one (cuda_graph=\"auto\" "
                         "turns the CUDA graph off when compiling)")
    return cuda_graph


def resolve_channels_last(channels_last: bool | str, device: torch.device) -> bool:
    """"auto" -> channels-last backbone on the CPU (measured faster there), not on CUDA
    (unmeasured)."""
    if channels_last == "auto":
        return device.type == "cpu"
    if not isinstance(channels_last, bool):
        raise ValueError(f'channels_last must be "auto", True or False, got {channels_last!r}')
    return channels_last


def channels_last_views(views: torch.Tensor) -> torch.Tensor:
    """(B, V, 3, M, M) views, same values, stored (V, B, M, M, 3): the backbone's view-major
    flatten to (V*B, 3, M, M) is then a view in channels-last layout, not a copy to NCHW."""
    return views.permute(1, 0, 3, 4, 2).contiguous().permute(1, 0, 4, 2, 3)


class Predictor:
    """Images -> label probabilities with a trained LCNet and its recorded preprocessing.

    ``compile=True`` runs the forward through ``torch.compile`` (default mode, dynamic=False):
    the same probabilities to float32 rounding, faster per batch (BENCHMARKS.md), but each batch
    size met compiles once, on its first call (tens of seconds on a 2-core CPU; the last, smaller
    batch of a call is a second size). torch recompiles for at most 8 sizes per process, then
    runs further sizes eagerly. Worth it for many batches, not for a few images. On CUDA it
    replaces the CUDA graph (cuda_graph="auto" is then off; True with compile is an error).
    ``channels_last`` ("auto": on the CPU only) runs the backbone in NHWC layout (see the module
    docstring); the model's conv weights are converted in place.
    """

    def __init__(self, model: torch.nn.Module, classes: Sequence[str], preprocess: dict,
                 device: torch.device | str = "cpu", precision: str = "auto",
                 batch_size: int = 16, cuda_graph: bool | str = "auto", compile: bool = False,
                 channels_last: bool | str = "auto"):
        if len(classes) != model.num_classes:
            raise ValueError(f"{len(classes)} class names for a model with {model.num_classes} "
                             "classes")
        self.device = torch.device(device)
        self.cuda_graph = resolve_cuda_graph(cuda_graph, self.device, compile)
        self.channels_last = resolve_channels_last(channels_last, self.device)
        self.model = model.to(self.device).eval()
        if self.channels_last:  # only 4-d parameters change: the backbone's conv weights
            self.model.to(memory_format=torch.channels_last)
        # the compiled wrapper shares the model's parameters; dynamic=False: static shapes, at
        # one compilation per batch size met
        self.compiled = compile
        self._forward = torch.compile(self.model, dynamic=False) if compile else self.model
        self.classes = list(classes)
        self.preprocess = dict(preprocess)
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = int(batch_size)
        self.resize = resize_transform(self.preprocess)
        self.to_views = DeviceViews(self.preprocess["crop_level"], self.preprocess["image_size"],
                                    self.preprocess["mean"], self.preprocess["std"])
        self._graphs: dict[int, CudaGraphForward] = {}

    @classmethod
    def from_pretrained(cls, path: str, device: str = "auto", weights: str | None = None,
                        precision: str = "auto", batch_size: int = 16,
                        cuda_graph: bool | str = "auto", compile: bool = False,
                        channels_last: bool | str = "auto") -> Predictor:
        """A run directory (its best, else last checkpoint) or checkpoint file. device "auto" =
        the GPU when there is one; precision "auto" = bf16 autocast on CUDA, fp32 elsewhere;
        cuda_graph "auto" = replay the forward from CUDA graphs on a GPU (unless compile);
        compile = torch.compile the forward; channels_last "auto" = NHWC backbone on the CPU."""
        target = pick_device(device)
        resolve_cuda_graph(cuda_graph, target, compile)  # bad options fail before loading
        resolve_channels_last(channels_last, target)
        model = load_model(path, target, weights)
        return cls(model, model.classes, model.preprocess, target, precision, batch_size,
                   cuda_graph, compile, channels_last)

    def batch(self, images: Sequence[Any]) -> torch.Tensor:
        """Preprocessed float32 views (n, V, 3, M, M) of `images`, on the predictor's device.

        Each image is resized to uint8 on the CPU; the uint8 batch goes to the device and
        lcnet_fast.ops.crop_views scales, normalises and cuts it in one pass. Equal, to float32
        rounding, to split_views(preprocess_transform(image)) (the thumbnail view averages the
        bytes exactly before normalising instead of averaging normalised floats)."""
        pixels = torch.stack([self.resize(to_uint8_chw(image)).as_subclass(torch.Tensor)
                              for image in images])  # (n, 3, S, S) uint8
        views = self.to_views(pixels.to(self.device, non_blocking=True))
        return channels_last_views(views) if self.channels_last else views

    def logits(self, views: torch.Tensor) -> torch.Tensor:
        """The model's (n, C) logits for a batch from `batch`: compiled, replayed from a CUDA
        graph, or eager, as the predictor was built."""
        if not self.cuda_graph:
            with torch.inference_mode(), autocast(self.device, self.precision):
                try:
                    return self._forward(views)
                except torch._dynamo.exc.TorchDynamoException as exc:  # only raised when compiled
                    raise compile_failure(exc) from exc
        runner = self._graphs.get(views.shape[0])
        if runner is None:
            runner = CudaGraphForward(
                self.model, autocast_dtype=torch.bfloat16 if self.precision == "bf16" else None,
                input_shape=tuple(views.shape))
            self._graphs[views.shape[0]] = runner
        return runner(views)

    def probabilities(self, images: Any) -> torch.Tensor:
        """(n, C) float32 probabilities on the CPU; `images` one image or a sequence of them."""
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        out = []
        for start in range(0, len(items), self.batch_size):
            views = self.batch(items[start:start + self.batch_size])
            out.append(torch.sigmoid(self.logits(views).float()).cpu())
        if not out:
            return torch.empty(0, len(self.classes))
        return torch.cat(out)

    def ranked(self, probabilities: torch.Tensor, threshold: float | None = None,
               top_k: int | None = None) -> list[tuple[str, float]]:
        """[(label, probability)] of one image, most probable first (ties: class order)."""
        order = torch.argsort(probabilities, descending=True, stable=True).tolist()
        items = [(self.classes[i], float(probabilities[i])) for i in order]
        if threshold is not None:
            items = [item for item in items if item[1] >= threshold]
        return items[:top_k] if top_k else items

    def __call__(self, images: Any, threshold: float | None = None, top_k: int | None = None):
        """{label: probability} (most probable first) for one image, a list of them for a list."""
        probabilities = self.probabilities(images)
        results = [dict(self.ranked(p, threshold, top_k)) for p in probabilities]
        return results if isinstance(images, (list, tuple)) else results[0]
