"""Datasets and loaders from the run config: which reader, which files, which transforms.

All dataset-specific knowledge of the drivers lives here. Validation and test splits are built with
the training split's class list, so a class missing from a small split does not shift the columns.
An empty split is an error that names the split and its source.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from lcnet_fast.config import ConfigError, DataConfig, ModelConfig
from lcnet_fast.device import DeviceViews  # noqa: F401 (re-exported: its old home)
from lcnet_fast.engine import seeding
from lcnet_fast.errors import EmptySplitError


@dataclass
class Splits:
    train: Dataset | None
    val: Dataset | None
    test: Dataset | None
    classes: list[str]


# data.augment names -> build_transforms(augment=...). "flip" exists for the synthetic scenes, whose
# classes are colours: RandAugment's colour operations would change what an image shows.
AUGMENT_CHOICES = {"default": True, "flip": {"randaugment": False, "cutout": False}, "none": False}


def transforms_for(train: bool, data: DataConfig, model: ModelConfig):
    """The split's transform. Its output is uint8 (3, S, S): DeviceViews turns each batch into
    normalised views on the device (so loader workers move and convert a quarter of the bytes)."""
    from lcnet_fast.data.transforms import build_transforms

    if data.augment not in AUGMENT_CHOICES:
        raise ConfigError(
            f"data.augment must be one of {', '.join(AUGMENT_CHOICES)}, got {data.augment!r}"
        )
    return build_transforms(
        train=train,
        crop_level=model.crop_level,
        image_size=model.image_size,
        augment=AUGMENT_CHOICES[data.augment],
        mean=tuple(data.mean),
        std=tuple(data.std),
        output="uint8",
    )


def build_split(
    split: str, data: DataConfig, model: ModelConfig, train: bool, classes: list[str] | None = None
) -> Dataset:
    """One split ('train', 'val', 'test' or a dataset-specific name) of the configured dataset."""
    transform = transforms_for(train, data, model)
    kind = data.dataset
    if kind == "synthetic":
        from lcnet_fast.data.synthetic import SyntheticScenes

        sizes = {
            "train": data.synthetic_num_train,
            "val": data.synthetic_num_val,
            "test": data.synthetic_num_test,
        }
        if split not in sizes:
            raise ConfigError(f"synthetic dataset has splits train, val, test; got {split!r}")
        if sizes[split] < 1:
            raise EmptySplitError(
                f"synthetic split {split!r} is empty (data.synthetic_num_{split} = {sizes[split]})"
            )
        return SyntheticScenes(
            num_images=sizes[split],
            image_size=data.synthetic_image_size,
            num_classes=data.synthetic_num_classes,
            seed=data.synthetic_seed,
            split=split,
            transform=transform,
            cache=data.synthetic_cache,
            kind=data.synthetic_kind,
        )
    if kind in ("coco", "voc", "csv"):
        from lcnet_fast.data.check import open_split

        return open_split(split, data, transform=transform, classes=classes)
    raise ConfigError(f"unknown dataset {kind!r}")


def _check_not_empty(dataset: Dataset | None, split: str, data: DataConfig) -> None:
    if dataset is not None and len(dataset) == 0:
        raise EmptySplitError(f"{data.dataset} split {split!r} has no images (root {data.root!r})")


def _has_val_file(data: DataConfig) -> bool:
    """False when the default val split names no file (coco without --coco-val-annotations, csv
    without --csv-val): then data.val_fraction > 0 holds one out of train instead."""
    if data.val_split != "val":
        return True
    if data.dataset == "coco":
        return bool(data.coco_val_annotations)
    if data.dataset == "csv":
        return bool(data.csv_val)
    return True


def build_splits(
    data: DataConfig, model: ModelConfig, seed: int, need_train: bool = True
) -> Splits:
    """train / val / test datasets; without a val split (or file), `val_fraction` of train is
    held out."""
    train = build_split(data.train_split, data, model, train=True) if need_train else None
    classes = list(train.classes) if train is not None else None
    val = None
    if data.val_split and (_has_val_file(data) or data.val_fraction <= 0):
        val = build_split(data.val_split, data, model, train=False, classes=classes)
    elif data.val_fraction > 0 and train is not None:
        train, val = _hold_out(train, data, model, seed)
    test = (
        build_split(data.test_split, data, model, train=False, classes=classes)
        if data.test_split
        else None
    )
    for name, dataset in (("train", train), ("val", val), ("test", test)):
        _check_not_empty(dataset, name, data)
    if classes is None:
        classes = list((test or val).classes)
    return Splits(train, val, test, classes)


def sample_with_skips(dataset: Dataset, index: int) -> tuple:
    """(image, label, skipped paths) of any dataset: the readers' get_sample, else (*item, ())."""
    getter = getattr(dataset, "get_sample", None)
    if getter is None:
        image, label = dataset[index]
        return image, label, ()
    return getter(index)


class _LabelledSubset(Subset):
    """A Subset that keeps the `classes`/`labels` contract of the datasets."""

    def __init__(self, dataset: Dataset, indices: list[int]):
        super().__init__(dataset, indices)
        self.classes = list(dataset.classes)
        self.labels = dataset.labels[torch.as_tensor(indices, dtype=torch.long)]

    def get_sample(self, index: int) -> tuple:
        return sample_with_skips(self.dataset, self.indices[index])


class _WithSkips(Dataset):
    """Loader-side view of a dataset: samples are (image, label, skipped paths)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        return sample_with_skips(self.dataset, index)


def collate_with_skips(batch):
    """(images (B, 3, S, S), labels (B, C), skipped): `skipped[k]` is the tuple of unreadable
    image paths skipped to produce sample k (non-empty: sample k stands in for a bad image)."""
    from lcnet_fast.data.collate import collate_multilabel

    images, labels = collate_multilabel([(image, label) for image, label, _ in batch])
    return images, labels, [tuple(skipped) for _, _, skipped in batch]


def _hold_out(train: Dataset, data: DataConfig, model: ModelConfig, seed: int):
    """Split a dataset into (train, val) by a seeded permutation; val gets eval transforms."""
    n = len(train)
    count = int(round(n * data.val_fraction))
    if count < 1 or count >= n:
        raise EmptySplitError(
            f"data.val_fraction {data.val_fraction} of {n} training images leaves an empty split"
        )
    perm = torch.randperm(n, generator=seeding.generator(seed, seeding.SPLIT)).tolist()
    # a second reader of the same split with evaluation transforms, so validation is not augmented
    val_source = build_split(
        data.train_split, data, model, train=False, classes=list(train.classes)
    )
    return _LabelledSubset(train, sorted(perm[count:])), _LabelledSubset(
        val_source, sorted(perm[:count])
    )


def make_loader(
    dataset: Dataset, batch_size: int, sampler, num_workers: int, drop_last: bool, pin_memory: bool
) -> DataLoader:
    """Batches (images, labels, skipped) -- see collate_with_skips."""
    return DataLoader(
        _WithSkips(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
        collate_fn=collate_with_skips,
    )
