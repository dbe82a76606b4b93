"""Procedural scenes for the built-in synthetic dataset: what is in an image, and how it is drawn.

Why this design: LCNet's two ideas must matter on it, and a tiny CNN on 2 CPU cores must learn it in
minutes.

* Label correlation: every image has a THEME (background tint). Each class has a home theme
  (``class_index % num_themes``); a class is present with probability ``p_home`` in its home theme
  and ``p_other`` elsewhere, so classes sharing a home co-occur far above independence and a label
  graph has something to learn.
* Crop-Forwarding: the ``tiny_*`` classes are drawn at about 3.5-5 % of the image side (4-6 px at
  128 px), so after the 2x down-sampling of a global view they are a 2-3 px smudge, while a full
  resolution crop still shows their shape. ``tiny_yellow_square`` shares its colour with
  ``yellow_star`` and ``tiny_white_cross`` with ``white_circle``, so colour alone does not identify
  them: size and shape must be seen.
* Learnability: bold saturated colours on dark backgrounds, axis-aligned shapes, moderate grey
  clutter.

Reproducibility: everything about image ``i`` comes from
``numpy.random.default_rng([seed, split_id, i, stream])`` -- labels from stream 0, geometry from
stream 1, pixels from stream 2 -- so image ``i`` depends only on ``(seed, split, i)`` (same in every
DataLoader worker) and labels are computed without drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "CATALOGUE",
    "ClassSpec",
    "SceneObject",
    "sample_labels",
    "sample_objects",
    "draw_scene",
    "SPLIT_IDS",
]

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

COLOURS = {
    "red": (235, 35, 35),
    "green": (40, 205, 60),
    "blue": (45, 90, 245),
    "yellow": (250, 230, 40),
    "white": (250, 250, 250),
    "magenta": (230, 45, 220),
    "cyan": (40, 230, 230),
    "orange": (250, 140, 20),
    "pink": (250, 155, 195),
}


@dataclass(frozen=True)
class ClassSpec:
    name: str
    shape: str  # circle square triangle star cross ring diamond stripes checker
    colour: str
    tiny: bool


def is_tiny_class(name: str) -> bool:
    """The naming contract for small-object classes: ``tiny_<colour>_<shape>``."""
    return name.startswith("tiny_")


def _spec(name: str) -> ClassSpec:
    parts = name.split("_")
    colour, shape = parts[-2], parts[-1]
    return ClassSpec(name, shape, colour, is_tiny_class(name))


# Order matters: the first ``num_classes`` entries are used, and index % num_themes is the home # #
# # # # # # # # # # theme.
CATALOGUE: tuple[ClassSpec, ...] = tuple(
    _spec(n)
    for n in (
        "red_circle",
        "green_square",
        "blue_triangle",
        "yellow_star",
        "tiny_white_cross",
        "magenta_ring",
        "cyan_stripes",
        "orange_diamond",
        "white_circle",
        "tiny_yellow_square",
        "green_checker",
        "pink_triangle",
        "tiny_red_circle",
        "blue_stripes",
        "orange_ring",
        "tiny_cyan_square",
    )
)

THEME_BACKGROUNDS = (
    (45, 45, 70),
    (70, 50, 35),
    (35, 65, 45),
    (60, 60, 60),
    (70, 35, 60),
    (30, 60, 70),
)

LARGE_SIZE = (0.18, 0.30)  # object side as a fraction of the image side
TINY_SIZE = (0.035, 0.05)


@dataclass(frozen=True)
class SceneObject:
    """One drawn thing.

    ``kind``: "object" (an instance of class ``class_index``), "clutter" (grey, ``class_index`` -1)
    or "decoy" (a tiny shape in the colour of tiny class ``class_index`` but another shape -- NOT an
    instance of it; only full resolution tells the two apart).
    """

    class_index: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, inclusive-exclusive
    kind: str = "object"


def _rng(seed: int, split_id: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(split_id), int(index), int(stream)])


def sample_labels(
    seed: int,
    split_id: int,
    index: int,
    num_classes: int,
    num_themes: int,
    p_home: float,
    p_other: float,
) -> tuple[int, np.ndarray]:
    """(theme, labels (C,) int8) of one image; at least one class is always present."""
    rng = _rng(seed, split_id, index, 0)
    theme = int(rng.integers(num_themes))
    home = np.arange(num_classes) % num_themes == theme
    p = np.where(home, p_home, p_other)
    labels = (rng.random(num_classes) < p).astype(np.int8)
    if not labels.any():
        candidates = np.flatnonzero(home) if home.any() else np.arange(num_classes)
        labels[candidates[rng.integers(len(candidates))]] = 1
    return theme, labels


def _overlaps(box, boxes, margin: int) -> bool:
    x0, y0, x1, y1 = box
    return any(
        x0 < b[2] + margin and b[0] < x1 + margin and y0 < b[3] + margin and b[1] < y1 + margin
        for b in boxes
    )


def _place(rng, size: int, image_size: int, taken, margin: int, tries: int = 30):
    hi = max(1, image_size - size)
    box = None
    for _ in range(tries):
        x, y = int(rng.integers(hi)), int(rng.integers(hi))
        box = (x, y, x + size, y + size)
        if not _overlaps(box, taken, margin):
            break
    return box


def sample_objects(
    seed: int,
    split_id: int,
    index: int,
    labels: np.ndarray,
    image_size: int,
    clutter: int,
    p_decoy: float = 0.35,
) -> list[SceneObject]:
    """Boxes of the clutter (drawn first), every present class's instances, and decoys."""
    rng = _rng(seed, split_id, index, 1)
    objects: list[SceneObject] = []
    for _ in range(int(rng.integers(clutter + 1))):
        size = max(3, int(image_size * rng.uniform(0.06, 0.2)))
        objects.append(SceneObject(-1, _place(rng, size, image_size, [], 0, 1), "clutter"))
    taken: list[tuple] = []
    present = np.flatnonzero(labels == 1)
    large = [c for c in present if not CATALOGUE[c].tiny]
    tiny = [c for c in present if CATALOGUE[c].tiny]

    def add(c, size_range, min_size: int, margin: int, kind: str = "object") -> None:
        size = max(min_size, int(round(image_size * rng.uniform(*size_range))))
        box = _place(rng, size, image_size, taken, margin)
        taken.append(box)
        objects.append(SceneObject(int(c), box, kind))

    for c in large:
        for _ in range(1 + int(rng.random() < 0.25)):
            add(c, LARGE_SIZE, 4, 1)
    for c in tiny:
        for _ in range(1 + int(rng.random() < 0.5)):
            add(c, TINY_SIZE, 3, 2)
    for c in range(len(labels)):
        if CATALOGUE[c].tiny and rng.random() < p_decoy:
            add(c, TINY_SIZE, 3, 2, "decoy")
    return objects


def _star(box, points: int = 5):
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, (x1 - x0) / 2
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, r, r * 0.45)
    return [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii, strict=True)]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box, fill) -> None:
    x0, y0, x1, y1 = box
    w = x1 - x0
    last = (x0, y0, x1 - 1, y1 - 1)  # PIL boxes are inclusive
    if shape == "circle":
        draw.ellipse(last, fill=fill)
    elif shape == "square":
        draw.rectangle(last, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0 + (w - 1) / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=fill)
    elif shape == "star":
        draw.polygon(_star(box), fill=fill)
    elif shape == "diamond":
        mx, my = x0 + (w - 1) / 2, y0 + (w - 1) / 2
        draw.polygon([(mx, y0), (x1 - 1, my), (mx, y1 - 1), (x0, my)], fill=fill)
    elif shape == "cross":
        arm = max(1, w // 3)
        a0 = x0 + (w - arm) // 2
        b0 = y0 + (w - arm) // 2
        draw.rectangle((a0, y0, a0 + arm - 1, y1 - 1), fill=fill)
        draw.rectangle((x0, b0, x1 - 1, b0 + arm - 1), fill=fill)
    elif shape == "ring":
        draw.ellipse(last, outline=fill, width=max(1, w // 5))
    elif shape == "stripes":
        step = max(2, w // 6)
        for k, y in enumerate(range(y0, y1, step)):
            draw.rectangle(
                (x0, y, x1 - 1, min(y + step, y1) - 1), fill=fill if k % 2 == 0 else (15, 15, 15)
            )
    elif shape == "checker":
        step = max(2, w // 4)
        for j, y in enumerate(range(y0, y1, step)):
            for i, x in enumerate(range(x0, x1, step)):
                colour = fill if (i + j) % 2 == 0 else (15, 15, 15)
                draw.rectangle((x, y, min(x + step, x1) - 1, min(y + step, y1) - 1), fill=colour)
    else:
        raise ValueError(f"unknown shape {shape!r}")


_CLUTTER_SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")


def draw_scene(
    seed: int,
    split_id: int,
    index: int,
    theme: int,
    objects: list[SceneObject],
    image_size: int,
    noise: int,
) -> np.ndarray:
    """Render one scene as an ``(S, S, 3)`` uint8 array."""
    rng = _rng(seed, split_id, index, 2)
    bg = np.asarray(THEME_BACKGROUNDS[theme % len(THEME_BACKGROUNDS)], dtype=np.int16)
    pixels = bg + rng.integers(-noise, noise + 1, size=(image_size, image_size, 1), dtype=np.int16)
    pixels = np.broadcast_to(np.clip(pixels, 0, 255), (image_size, image_size, 3)).astype(np.uint8)
    img = Image.fromarray(pixels)
    draw = ImageDraw.Draw(img)
    for obj in objects:
        if obj.kind == "clutter":
            grey = int(rng.integers(95, 160))
            _draw_shape(
                draw, _CLUTTER_SHAPES[int(rng.integers(len(_CLUTTER_SHAPES)))], obj.box, (grey,) * 3
            )
        elif obj.kind == "decoy":
            spec = CATALOGUE[obj.class_index]
            _draw_shape(
                draw, "square" if spec.shape != "square" else "cross", obj.box, COLOURS[spec.colour]
            )
        else:
            spec = CATALOGUE[obj.class_index]
            _draw_shape(draw, spec.shape, obj.box, COLOURS[spec.colour])
    return np.asarray(img)
