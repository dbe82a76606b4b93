"""The built-in synthetic multi-label dataset, and a CLI that writes it as COCO / VOC / CSV files.

``SyntheticScenes`` needs no files: image ``i`` is drawn on demand from ``(seed, split, i)`` (see
:mod:`lcnet_fast.data.scene` for why the scenes look the way they do). ``labels`` are computed
without drawing, so label statistics (co-occurrence, class frequencies) are cheap.

CLI::

    python -m lcnet_fast.data.synthetic --out DIR --format coco|voc|csv \
        [--num-images N] [--image-size S] [--num-classes C] [--seed K] \
        [--split train,test] [--kind themes|small_objects] [--ext png|jpg]

writes each split with the layout described in :mod:`lcnet_fast.data.writers`; the matching reader
reads it back exactly (PNG: same pixels too).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import scene, small_objects
from .scene import SPLIT_IDS, SceneObject

__all__ = ["SyntheticScenes", "DEFAULT_SYNTHETIC", "KINDS", "main"]

# scene families: "themes" (lcnet_fast.data.scene, the main job's data) and "small_objects"
# (lcnet_fast.data.small_objects, the benchmark where crops, depth and the graph are tested)
KINDS = {"themes": scene, "small_objects": small_objects}

# The configuration recommended for the default training run (2 CPU cores, a few minutes):
# crop_level 2 x view size 64 -> full images of 128 px.
DEFAULT_SYNTHETIC = dict(num_images=1500, image_size=128, num_classes=10, seed=0, num_themes=4)


class SyntheticScenes(Dataset):
    """Procedurally drawn multi-label scenes, deterministic by seed.

    Args:
        num_images: images in this split.
        image_size: side of the square images, in pixels.
        num_classes: the first ``num_classes`` entries of the kind's ``CATALOGUE`` (themes: 1..16,
            small_objects: 1..10).
        seed: base seed; ``split`` ("train", "val", "test") selects an independent stream, so splits
            never share images.
        transform: applied to the uint8 ``(3, S, S)`` image tensor.
        num_themes: scene themes (background tints); class c's home theme is ``c % num_themes``.
        p_home, p_other: probability of a class being present in its home theme / in another theme.
        clutter: up to this many grey distractor shapes per image.
        noise: amplitude of the per-pixel background noise (0..255 scale).
        cache: keep drawn images in memory (about S*S*3 bytes each), useful when many epochs are run
            in the main process.
        kind: "themes" (default) or "small_objects"; the latter has no themes (``num_themes``,
            ``p_home``, ``p_other`` and ``clutter`` do not apply) and draws every scene on a fixed
            canvas that is area-averaged to ``image_size``.
    """

    def __init__(
        self,
        num_images: int = DEFAULT_SYNTHETIC["num_images"],
        image_size: int = DEFAULT_SYNTHETIC["image_size"],
        num_classes: int = DEFAULT_SYNTHETIC["num_classes"],
        seed: int = 0,
        split: str = "train",
        transform: Callable | None = None,
        num_themes: int = 4,
        p_home: float = 0.6,
        p_other: float = 0.08,
        clutter: int = 4,
        noise: int = 12,
        cache: bool = False,
        kind: str = "themes",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        self.kind, self._family = kind, KINDS[kind]
        catalogue = self._family.CATALOGUE
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
        if num_images < 1:
            raise ValueError(
                f"num_images must be >= 1 (an empty split is not a dataset), got {num_images}"
            )
        if not 1 <= num_classes <= len(catalogue):
            raise ValueError(
                f"num_classes must be in 1..{len(catalogue)} for kind {kind!r}, got {num_classes}"
            )
        if image_size < 32:
            raise ValueError(
                f"image_size must be >= 32 so tiny objects stay >= 3 px, got {image_size}"
            )
        if num_themes < 1:
            raise ValueError(f"num_themes must be >= 1, got {num_themes}")
        self.num_images, self.image_size, self.num_classes = (
            int(num_images),
            int(image_size),
            int(num_classes),
        )
        self.seed, self.split, self.split_id = int(seed), split, SPLIT_IDS[split]
        self.transform = transform
        self.num_themes, self.p_home, self.p_other = int(num_themes), float(p_home), float(p_other)
        self.clutter, self.noise = int(clutter), int(noise)
        self.classes = [spec.name for spec in catalogue[:num_classes]]
        self.tiny_classes = [i for i, spec in enumerate(catalogue[:num_classes]) if spec.tiny]
        themes, rows = zip(*(self._labels(i) for i in range(self.num_images)), strict=True)
        self.themes = torch.tensor(themes, dtype=torch.long)
        self.labels = torch.from_numpy(np.stack(rows)).to(torch.int8)
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def _labels(self, index: int):
        if self.kind == "small_objects":
            return -1, small_objects.sample_labels(
                self.seed, self.split_id, index, self.num_classes
            )
        return scene.sample_labels(
            self.seed,
            self.split_id,
            index,
            self.num_classes,
            self.num_themes,
            self.p_home,
            self.p_other,
        )

    def __len__(self) -> int:
        return self.num_images

    def image_path(self, index: int) -> str:
        """A stable pseudo-path naming the image in messages (no file exists)."""
        return f"synthetic:{self.split}/{self.file_stem(index)}"

    def file_stem(self, index: int) -> str:
        return f"{self.split}_{index:06d}"

    def objects(self, index: int) -> list[SceneObject]:
        """Clutter (class_index -1) and class instances of image ``index``, with pixel boxes
        (small_objects: boxes on its fixed canvas of ``small_objects.CANVAS`` pixels)."""
        if self.kind == "small_objects":
            return small_objects.sample_objects(
                self.seed, self.split_id, index, self.labels[index].numpy()
            )
        return scene.sample_objects(
            self.seed,
            self.split_id,
            index,
            self.labels[index].numpy(),
            self.image_size,
            self.clutter,
        )

    def load(self, index: int) -> torch.Tensor:
        """The uint8 ``(3, S, S)`` image, without transform."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        if self.kind == "small_objects":
            arr = small_objects.draw_scene(
                self.seed, self.split_id, index, self.objects(index), self.image_size, self.noise
            )
        else:
            arr = scene.draw_scene(
                self.seed,
                self.split_id,
                index,
                int(self.themes[index]),
                self.objects(index),
                self.image_size,
                self.noise,
            )
        image = torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
        if self._cache is not None:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"SyntheticScenes: index {index} out of range for {n} images")
        index %= n
        image = self.load(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index].to(torch.float32)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m lcnet_fast.data.synthetic",
        description="Write the synthetic dataset as image files + annotations.",
    )
    p.add_argument("--out", required=True, help="output directory (created)")
    p.add_argument("--format", required=True, choices=("coco", "voc", "csv"))
    p.add_argument(
        "--num-images", type=int, default=DEFAULT_SYNTHETIC["num_images"], help="images per split"
    )
    p.add_argument("--image-size", type=int, default=DEFAULT_SYNTHETIC["image_size"])
    p.add_argument("--num-classes", type=int, default=DEFAULT_SYNTHETIC["num_classes"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--split",
        default="train,val,test",
        help="comma-separated splits among train,val,test (default all three, so a written "
        "dataset has a validation file: --csv-val val.csv / --data.coco_val_annotations ...)",
    )
    p.add_argument("--kind", default="themes", choices=sorted(KINDS), help="scene family")
    p.add_argument(
        "--ext", default="png", choices=("png", "jpg"), help="png is lossless; jpg is quality 95"
    )
    args = p.parse_args(argv)
    for name, value, low in (
        ("--num-images", args.num_images, 1),
        ("--image-size", args.image_size, 8),
        ("--num-classes", args.num_classes, 1),
    ):
        if value < low:
            p.error(f"{name} must be >= {low}, got {value}")
    args.splits = [s.strip() for s in args.split.split(",") if s.strip()]
    if not args.splits or set(args.splits) - {"train", "val", "test"}:
        p.error(f"--split takes train, val and/or test, got {args.split!r}")
    try:  # the scene family's own limits (class count, size) as one line
        SyntheticScenes(
            num_images=1, image_size=args.image_size, num_classes=args.num_classes, kind=args.kind
        )
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from .writers import write_dataset

    args = _parse(argv)
    for split in args.splits:
        ds = SyntheticScenes(
            num_images=args.num_images,
            image_size=args.image_size,
            num_classes=args.num_classes,
            seed=args.seed,
            split=split,
            kind=args.kind,
        )
        where = write_dataset(ds, args.out, args.format, ext=args.ext)
        print(f"wrote {len(ds)} {split} images ({args.format}) -> {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
