"""Datasets, the built-in synthetic dataset, transforms and label-graph initialisation.

Every dataset returns ``(image, label_vector)``: the image is a uint8 ``(3, H, W)`` RGB tensor
passed through the dataset's ``transform`` (see :func:`build_transforms`), the label vector is
float32 ``(C,)`` with 1 = present, 0 = absent, -1 = ignored. Each has ``classes``, ``labels`` ((n,
C) int8), ``image_path(i)`` and ``__len__``. This package does not import the models or ops.
"""

from .base import ImageLoadError, MultiLabelDataset, load_image
from .coco import CocoDataset
from .collate import collate_multilabel
from .csv_dataset import CSVDataset
from .folder import FolderDataset
from .label_graph_init import cooccurrence, cosine_similarity, load_word_vectors, one_hot
from .synthetic import DEFAULT_SYNTHETIC, SyntheticScenes
from .transforms import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, Cutout, build_transforms
from .voc import VOC_CLASSES, VOCDataset
from .writers import write_dataset

__all__ = [
    "AugmentConfig",
    "CSVDataset",
    "CocoDataset",
    "Cutout",
    "DEFAULT_SYNTHETIC",
    "FolderDataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageLoadError",
    "MultiLabelDataset",
    "SyntheticScenes",
    "VOCDataset",
    "VOC_CLASSES",
    "build_transforms",
    "collate_multilabel",
    "cooccurrence",
    "cosine_similarity",
    "load_image",
    "load_word_vectors",
    "one_hot",
    "write_dataset",
]
