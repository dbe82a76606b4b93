"""Decoder attention of chosen labels over an image, per LLCD layer (the paper's Figures 7-10).

What is drawn: in every LLCD layer, MHA2 is the attention of the N label queries over the T image
tokens (eq. (1): MHA2 = MHA(INT1, INT2, INT2)). The model returns it on request
(``model(x, return_attention=True)``, computed with an explicit softmax only then); here it is
averaged over heads, giving for each label a distribution over the T = V * h * w tokens (sums to 1).

Mapping tokens back to the image (Crop-Forwarding, level k, image side S = k * M): the tokens come
view by view -- view 0 is the whole image down-sampled to M x M, views 1..k^2 the M x M tiles in
row-major order -- and inside a view in the backbone's h x w grid, row-major. On a k*h x k*w grid
over the image:

* tile (r, c) puts its h x w weights into its own cell, rows r*h..(r+1)*h, cols c*w..(c+1)*w;
* the global view covers the whole image, so each of its tokens spreads its weight evenly over the
  k x k grid cells it covers (weight / k^2 each);
* the combined map is the sum of the two: attention mass per grid cell, still summing to 1.

At level 1 there is one view and the map is its h x w grid. The picture overlays the map
(bilinear-upsampled) on the preprocessed image, one panel per layer, with the crop grid drawn.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from lcnet_fast.models.crop_forwarding import num_views
from lcnet_fast.visualize._common import (
    VisualizeError,
    default_out_dir,
    load_for_pictures,
    new_figure,
    save_figure,
)


def token_grid(num_tokens: int, crop_level: int) -> tuple[int, int]:
    """(h, w) of one view's token grid from T = V * h * w (views are square, so h = w)."""
    views = num_views(crop_level)
    per_view, rest = divmod(num_tokens, views)
    side = int(round(per_view ** 0.5))
    if rest or side * side != per_view:
        raise VisualizeError(f"{num_tokens} image tokens do not split into {views} square views")
    return side, side


def tokens_to_maps(weights: torch.Tensor | np.ndarray, crop_level: int) -> dict[str, np.ndarray]:
    """weights (..., T) over the image tokens -> {"combined" (..., k*h, k*w), "global" (..., h, w),
    "tiles" (..., k*h, k*w) (zeros at level 1)} as described in the module doc."""
    w = np.asarray(weights.detach().cpu().double() if isinstance(weights, torch.Tensor)
                   else weights, dtype=np.float64)
    lead = w.shape[:-1]
    h, wd = token_grid(w.shape[-1], crop_level)
    k = crop_level
    per_view = w.reshape(*lead, num_views(k), h, wd)
    if k == 1:
        glob = per_view[..., 0, :, :]
        return {"combined": glob.copy(), "global": glob, "tiles": np.zeros_like(glob)}
    glob = per_view[..., 0, :, :]
    tiles = per_view[..., 1:, :, :].reshape(*lead, k, k, h, wd)  # (row, col, h, w)
    tiles = np.moveaxis(tiles, -3, -2).reshape(*lead, k * h, k * wd)  # (row, h, col, w) -> grid
    spread = np.repeat(np.repeat(glob, k, axis=-2), k, axis=-1) / (k * k)
    return {"combined": tiles + spread, "global": glob, "tiles": tiles}


def parse_layers(spec: str | list[int] | None, num_layers: int) -> list[int]:
    """'all' | 'last' | '1,3' (1-based) -> 0-based indices."""
    if spec is None or spec == "all":
        return list(range(num_layers))
    if spec == "last":
        return [num_layers - 1]
    items = spec if isinstance(spec, list) else [s for s in str(spec).split(",") if s.strip()]
    out = []
    for item in items:
        try:
            index = int(item)
        except ValueError:
            raise VisualizeError(f"--layers: expected 'all', 'last' or 1-based layer numbers, "
                                 f"got {spec!r}") from None
        if not 1 <= index <= num_layers:
            raise VisualizeError(f"--layers: layer {index} does not exist (the model has "
                                 f"{num_layers} LLCD layers, numbered 1..{num_layers})")
        out.append(index - 1)
    return out


def resolve_labels(labels, classes: list[str], probabilities: np.ndarray,
                   threshold: float = 0.5) -> list[int]:
    """Class indices: the named labels, or by default every label predicted at >= threshold (the
    most probable one when none is)."""
    if labels:
        names = labels.split(",") if isinstance(labels, str) else list(labels)
        names = [n.strip() for n in names if n.strip()]
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise VisualizeError(f"unknown label(s) {', '.join(unknown)}; the model's classes are: "
                                 f"{', '.join(classes)}")
        return [classes.index(n) for n in names]
    chosen = [int(i) for i in np.argsort(-probabilities, kind="stable")
              if probabilities[i] >= threshold]
    return chosen or [int(np.argmax(probabilities))]


def attention_maps(checkpoint, image, labels=None, layers="all", weights: str | None = None
                   ) -> dict:
    """Run the model on one image and map its MHA2 attention back onto the image.

    Returns {classes, labels (indices), layers (0-based), probabilities (C,), image (S, S, 3)
    uint8 as the model saw it before normalisation, crop_level, attention: {layer: (L, T) head-
    averaged weights of the chosen labels}, maps: {layer: tokens_to_maps(...)}}.
    """
    from lcnet_fast.inference import preprocess_transform, resize_transform, to_uint8_chw

    model = load_for_pictures(checkpoint, weights)
    if not hasattr(model, "decoder"):
        raise VisualizeError("this model is the plain pooled baseline (--arch pooled): it has no "
                             "decoder attention to draw")
    if getattr(model, "mirror_inputs", False):
        raise VisualizeError("this model was built with mirror_inputs=True: its label queries "
                             "attend to the graph nodes, not to the image; no attention map")
    preprocess = getattr(model, "preprocess", None) or {
        "crop_level": model.crop_level, "image_size": model.image_size,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    source = to_uint8_chw(image)
    shown = resize_transform(preprocess)(source)
    batch = preprocess_transform(preprocess)(source).unsqueeze(0)
    device = next(model.parameters()).device
    with torch.no_grad():
        logits, per_layer = model(batch.to(device), return_attention=True)
    probabilities = torch.sigmoid(logits[0].float()).cpu().numpy()
    classes = list(model.classes)
    chosen = resolve_labels(labels, classes, probabilities)
    layer_ids = parse_layers(layers, len(per_layer))
    attention, maps = {}, {}
    for layer in layer_ids:
        averaged = per_layer[layer][0].float().mean(dim=0)  # (N, T): heads averaged
        attention[layer] = averaged[chosen].cpu().numpy()
        maps[layer] = tokens_to_maps(attention[layer], model.crop_level)
    return {"classes": classes, "labels": chosen, "layers": layer_ids,
            "probabilities": probabilities, "image": shown.permute(1, 2, 0).numpy(),
            "crop_level": model.crop_level, "attention": attention, "maps": maps}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "label"


def plot_attention(checkpoint, image, labels=None, layers="all", out_dir: str | None = None,
                   weights: str | None = None) -> dict:
    """Write ``attention_<label>.png`` (one panel per chosen layer) for every chosen label, and
    ``attention.npz`` with the combined maps (key ``layer<l>_<label>``, 1-based layer) and the
    head-averaged token weights (``tokens_layer<l>_<label>``). Returns attention_maps()'s dict plus
    ``pngs`` and ``npz``."""
    result = attention_maps(checkpoint, image, labels, layers, weights)
    out_dir = out_dir or default_out_dir(checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    picture = result["image"]
    side = picture.shape[0]
    k = result["crop_level"]
    arrays, pngs = {}, []
    for row, label in enumerate(result["labels"]):
        name = result["classes"][label]
        panels = len(result["layers"])
        figure = new_figure(3.2 * panels + 0.8, 3.6)
        top = max(float(result["maps"][layer]["combined"][row].max())
                  for layer in result["layers"])  # one colour scale for all panels
        for column, layer in enumerate(result["layers"]):
            heat = result["maps"][layer]["combined"][row]
            arrays[f"layer{layer + 1}_{_safe(name)}"] = heat
            arrays[f"tokens_layer{layer + 1}_{_safe(name)}"] = result["attention"][layer][row]
            axes = figure.add_subplot(1, panels, column + 1)
            axes.imshow(picture, extent=(0, side, side, 0))
            shown = axes.imshow(heat, extent=(0, side, side, 0), cmap="jet", alpha=0.45,
                                interpolation="bilinear", vmin=0.0, vmax=top)
            for cut in range(1, k):  # the Crop-Forwarding grid
                axes.axhline(cut * side / k, color="white", linewidth=1.2, linestyle="--")
                axes.axvline(cut * side / k, color="white", linewidth=1.2, linestyle="--")
            axes.set_xlim(0, side)
            axes.set_ylim(side, 0)
            axes.set_title(f"LLCD layer {layer + 1}", fontsize=9)
            axes.axis("off")
        figure.colorbar(shown, ax=figure.axes, fraction=0.025, pad=0.02,
                        label="attention mass per cell")
        figure.suptitle(f"{name}: p = {result['probabilities'][label]:.3f} "
                        f"(MHA2, heads averaged, crop level {k})", fontsize=10)
        pngs.append(save_figure(figure, os.path.join(out_dir, f"attention_{_safe(name)}.png")))
    npz = os.path.join(out_dir, "attention.npz")
    np.savez(npz, **arrays)
    result.update(pngs=pngs, npz=npz)
    return result
