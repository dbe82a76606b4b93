"""The "small_objects" synthetic scenes: a benchmark where LCNet's mechanisms have something to
find.

Why this design (EXPERIMENTS.md, "The small-objects benchmark", has the reasoning in full):

* Resolution matters. Every scene is drawn once on a fixed ``CANVAS``-pixel canvas and then
  area-averaged down to the requested size, as a camera of lower resolution would see the same
  world. So crop level k (input k*M px) shows the SAME scene with k times the pixels, and a crop
  level comparison is paired scene by scene.
* Small objects that need those pixels. Six ``tiny_*`` classes are 3.5-4.8 % of the image side:
  2.2-3.1 px at 64 px (crop level 1 with 64-px views), 4.5-6.1 px at 128 px (level 2). They come in
  colour pairs that differ only in shape (a plus-shaped cross vs a ring), and solid squares of the
  same colours (decoys) and small grey crosses, rings and squares (clutter) are strewn around, so
  neither colour nor "something small is there" identifies a class: the shape must be resolved.
  At 2-3 px a cross, a ring and a square are nearly the same smudge; at 4.5-6 px they are not.
* Not predictable from the scene. The background tint is drawn independently of every label.
* Label correlation a graph can use. Four large, easy ``context`` classes (18-30 % of the side)
  are each present with probability ``p_large``; each tiny class has a context PARTNER
  (``partner(tiny) = context[i % 4]``) and is present with probability ``p_with`` when its partner
  is and ``p_without`` otherwise. The two classes of a colour pair have different partners, so
  the context disambiguates exactly what a low resolution cannot (cross or ring?). A model that
  only sees context gets a partial answer (about 0.5 AP on a tiny class); resolving the shape is
  needed for the rest.

Everything about image ``i`` comes from ``numpy.random.default_rng([seed, split_id, i, stream])``
(labels: stream 0, geometry: stream 1, pixels: stream 2), as in :mod:`lcnet_fast.data.scene`, so
it depends only on ``(seed, split, i)`` and never on the output size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .scene import COLOURS, THEME_BACKGROUNDS, ClassSpec, SceneObject, _draw_shape, _place, _rng

__all__ = ["CANVAS", "CATALOGUE", "partner", "sample_labels", "sample_objects", "draw_scene"]

CANVAS = 384  # scene geometry lives on this canvas; images are area-averaged down from it

CONTEXT = (
    ClassSpec("red_circle", "circle", "red", False),
    ClassSpec("green_square", "square", "green", False),
    ClassSpec("blue_triangle", "triangle", "blue", False),
    ClassSpec("yellow_star", "star", "yellow", False),
)
TINY = tuple(
    ClassSpec(f"tiny_{colour}_{shape}", shape, colour, True)
    for colour in ("white", "cyan", "orange")
    for shape in ("cross", "ring")
)
CATALOGUE: tuple[ClassSpec, ...] = CONTEXT + TINY

LARGE_SIZE = (0.18, 0.30)  # object side as a fraction of the image side
TINY_SIZE = (0.035, 0.048)
P_LARGE, P_WITH, P_WITHOUT = 0.4, 0.55, 0.08
DECOY_P = 0.3  # per tiny colour: a solid square of that colour
GREY_TINY = 4  # up to this many small grey crosses / rings / squares
GREY_LARGE = 3  # up to this many large grey shapes


def partner(class_index: int) -> int | None:
    """The context class a tiny class co-occurs with (None for a context class)."""
    if class_index < len(CONTEXT):
        return None
    return (class_index - len(CONTEXT)) % len(CONTEXT)


def sample_labels(seed: int, split_id: int, index: int, num_classes: int) -> np.ndarray:
    """labels (C,) int8 of one image: context classes independently, tiny ones by partner."""
    rng = _rng(seed, split_id, index, 0)
    draws = rng.random(len(CATALOGUE))  # always all classes: num_classes does not shift streams
    labels = np.zeros(num_classes, dtype=np.int8)
    for c in range(num_classes):
        mate = partner(c)
        if mate is None:
            p = P_LARGE
        else:
            mate_present = draws[mate] < P_LARGE  # the partner's own draw, kept or not
            p = P_WITH if mate_present else P_WITHOUT
        labels[c] = draws[c] < p
    return labels


def _size(rng, fraction: tuple[float, float]) -> int:
    return max(3, int(round(CANVAS * rng.uniform(*fraction))))


def sample_objects(seed: int, split_id: int, index: int, labels: np.ndarray) -> list[SceneObject]:
    """Canvas-pixel boxes: grey clutter, every present class's instances, decoys."""
    rng = _rng(seed, split_id, index, 1)
    objects: list[SceneObject] = []
    taken: list[tuple] = []

    def put(class_index: int, size: int, kind: str, margin: int) -> None:
        box = _place(rng, size, CANVAS, taken, margin)
        taken.append(box)
        objects.append(SceneObject(class_index, box, kind))

    for _ in range(int(rng.integers(GREY_LARGE + 1))):
        objects.append(SceneObject(-1, _place(rng, _size(rng, (0.1, 0.25)), CANVAS, [], 0, 1),
                                   "clutter"))
    present = np.flatnonzero(labels == 1)
    for c in present:
        if not CATALOGUE[c].tiny:
            for _ in range(1 + int(rng.random() < 0.25)):
                put(int(c), _size(rng, LARGE_SIZE), "object", 4)
    for c in present:
        if CATALOGUE[c].tiny:
            for _ in range(1 + int(rng.random() < 0.3)):
                put(int(c), _size(rng, TINY_SIZE), "object", 6)
    for c in range(len(labels)):
        # one decoy per tiny colour (the first class of each colour pair stands for the colour)
        if CATALOGUE[c].tiny and CATALOGUE[c].shape == "cross" and rng.random() < DECOY_P:
            put(c, _size(rng, TINY_SIZE), "decoy", 6)
    for _ in range(int(rng.integers(GREY_TINY + 1))):
        put(-1, _size(rng, TINY_SIZE), "grey_tiny", 6)
    return objects


_GREY_TINY_SHAPES = ("cross", "ring", "square")
_GREY_LARGE_SHAPES = ("circle", "square", "triangle", "diamond")


def draw_scene(
    seed: int, split_id: int, index: int, objects: list[SceneObject], image_size: int, noise: int
) -> np.ndarray:
    """Render on the canvas, area-average to ``image_size``: an ``(S, S, 3)`` uint8 array."""
    rng = _rng(seed, split_id, index, 2)
    tint = THEME_BACKGROUNDS[int(rng.integers(len(THEME_BACKGROUNDS)))]
    bg = np.asarray(tint, dtype=np.int16)
    grain = rng.integers(-noise, noise + 1, size=(CANVAS, CANVAS, 1), dtype=np.int16)
    pixels = np.broadcast_to(np.clip(bg + grain, 0, 255), (CANVAS, CANVAS, 3)).astype(np.uint8)
    img = Image.fromarray(pixels)
    draw = ImageDraw.Draw(img)
    for obj in objects:
        if obj.kind == "clutter":
            grey = (int(rng.integers(95, 160)),) * 3
            shape = _GREY_LARGE_SHAPES[int(rng.integers(len(_GREY_LARGE_SHAPES)))]
            _draw_shape(draw, shape, obj.box, grey)
        elif obj.kind == "grey_tiny":
            grey = (int(rng.integers(120, 200)),) * 3
            _draw_shape(draw, _GREY_TINY_SHAPES[int(rng.integers(3))], obj.box, grey)
        elif obj.kind == "decoy":
            _draw_shape(draw, "square", obj.box, COLOURS[CATALOGUE[obj.class_index].colour])
        else:
            spec = CATALOGUE[obj.class_index]
            _draw_shape(draw, spec.shape, obj.box, COLOURS[spec.colour])
    if image_size != CANVAS:
        img = img.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(img)
