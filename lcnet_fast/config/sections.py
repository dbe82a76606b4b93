"""The run configuration's sections: typed dataclasses, one per section, and their validation.

Every field is declared with :func:`option`: its default and a one-line help, which
``python -m lcnet_fast.train --help`` lists (lcnet_fast/config/help.py), so the help cannot drift
from the fields. Defaults marked (*) depart from the paper; they were chosen by the paired
measurements in EXPERIMENTS.md ("What makes LCNet learn"), and the paper presets
(lcnet_fast/config/presets.py) pin the paper's values. Values the paper does not state (weight
decay, EMA decay, OneCycle warm-up) follow the ASL / ML-Decoder training code it builds on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from lcnet_fast.errors import ConfigError

__all__ = [
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "field_help",
    "option",
    "section_types",
]


def option(default: Any, help: str) -> Any:
    """A config field: its default (a list default is copied per instance) and its one-line help."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def field_help(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


@dataclass
class DataConfig:
    """Dataset, files, data loading and preprocessing."""

    dataset: str = option("synthetic", "synthetic | coco | voc | csv")
    root: str = option(
        "",
        "dataset root (voc: VOCdevkit parent or VOC<year> dir; coco, csv: the relative paths of "
        "the data.coco_* / data.csv_* keys start here)",
    )
    # coco: image dirs and annotation json per split, relative to root unless absolute
    coco_train_images: str = option("train2014", "coco: training image directory")
    coco_train_annotations: str = option(
        "annotations/instances_train2014.json", "coco: training annotation json"
    )
    coco_test_images: str = option("val2014", "coco: test image directory")
    coco_test_annotations: str = option(
        "annotations/instances_val2014.json", "coco: test annotation json"
    )
    coco_val_images: str = option(
        "", 'coco: validation image directory (val_split "val"); "" = none (then val_fraction)'
    )
    coco_val_annotations: str = option("", 'coco: validation annotation json; "" = none')
    voc_year: str = option("2007", "voc: the VOC year")
    # csv: one file per split (relative to root unless absolute); the image paths inside are
    # relative to csv_image_dir
    csv_train: str = option("train.csv", "csv: training split file")
    csv_val: str = option("", 'csv: validation split file; "" = none')
    csv_test: str = option("test.csv", "csv: test split file")
    csv_image_dir: str = option(
        "", "csv: the directory the image paths in the files are relative to"
    )
    train_split: str = option("train", "name of the training split")
    val_split: str = option(
        "val", 'name of the validation split; "" = none (then val_fraction of train, or none)'
    )
    test_split: str = option("test", "name of the test split")
    val_fraction: float = option(
        0.0, "fraction of train held out (by seed) when the dataset has no validation split"
    )
    skip_bad_images: bool = option(
        False, "skip unreadable images (reported) instead of failing on the first one"
    )
    num_workers: int = option(0, "DataLoader worker processes; 0 keeps loading in the main process")
    augment: str = option("flip", "default (flip + RandAugment + Cutout) | flip | none")
    mean: list[float] = option([0.485, 0.456, 0.406], "per-channel normalisation mean (ImageNet)")
    std: list[float] = option([0.229, 0.224, 0.225], "per-channel normalisation std (ImageNet)")
    # synthetic dataset (lcnet_fast.data.SyntheticScenes)
    synthetic_num_train: int = option(1500, "synthetic: training images")
    synthetic_num_val: int = option(200, "synthetic: validation images")
    synthetic_num_test: int = option(500, "synthetic: test images")
    synthetic_image_size: int = option(
        128, "synthetic: image side; must equal model.crop_level * model.image_size"
    )
    synthetic_num_classes: int = option(10, "synthetic: number of classes")
    synthetic_seed: int = option(0, "synthetic: seed of the drawn scenes")
    synthetic_cache: bool = option(
        True, "synthetic: keep drawn images in memory across epochs (main process only)"
    )
    synthetic_kind: str = option(
        "themes",
        "synthetic: themes (the main job's scenes) | small_objects (the benchmark for crops, "
        "depth and graph: lcnet_fast/data/small_objects.py)",
    )
    # label graph initialisation
    label_embeddings: str = option(
        "one_hot", "one_hot | path to a word-vector file (lcnet_fast.data.load_word_vectors)"
    )
    correlation_init: str = option(
        "cosine", "label graph init: cosine (of the embeddings) | cooccurrence (of train labels)"
    )


@dataclass
class ModelConfig:
    """The model: backbone, Crop-Forwarding geometry, LLCD decoder and label graph."""

    arch: str = option(
        "lcnet",
        "lcnet | pooled: the plain baseline (backbone on the whole crop_level*image_size input, "
        "global average pooling, linear head; only backbone, pretrained, crop_level * image_size "
        "and drop_path_rate apply to it)",
    )
    backbone: str = option(
        "test_resnet", "timm model name (test_resnet: timm's tiny test ResNet, for CPU runs)"
    )
    pretrained: bool = option(False, "load timm's pretrained backbone weights")
    crop_level: int = option(
        2, "Crop-Forwarding level k: the whole image plus k*k tiles (one view at level 1)"
    )
    image_size: int = option(64, "backbone view size M; the model input is crop_level * M")
    d_model: int = option(128, "decoder width")
    num_heads: int = option(4, "attention heads (must divide d_model)")
    num_layers: int = option(2, "stacked LLCD layers")
    dim_feedforward: int = option(256, "LLCD feed-forward width")
    dropout: float = option(0.0, "(*) LLCD dropout (paper code: 0.1)")
    num_gat_layers: int = option(1, "GAT layers refining the label graph")
    use_graph: bool = option(True, 'the label-correlation graph; false = the "no graph" ablation')
    mirror_inputs: bool = option(
        False, "swap the decoder's image and graph inputs (the paper's Table 6 ablation)"
    )
    max_views_per_call: int = option(
        0, "views per backbone call; 0 = every view of the batch in one call"
    )
    drop_path_rate: float = option(0.0, "stochastic depth of the backbone (timm), when > 0")
    llcd_reading: str = option(
        "residual",
        "eq. (1) of the paper: literal (as printed: no residual path for the label queries) | "
        "residual (*) (INT3 = AddNorm(DO(MHA2) + INT1), Q' = AddNorm(DO(INT4) + INT3))",
    )
    token_norm: bool = option(
        True, "(*) LayerNorm on the projected backbone tokens (before positions)"
    )
    position_encoding: bool = option(True, "add the sine position + view embedding to the tokens")

    def view_geometry(self) -> tuple[int, int]:
        """(crop level, view size) of the model's input views. The pooled baseline takes the
        whole crop_level * image_size image as one view."""
        if self.arch == "pooled":
            return 1, self.crop_level * self.image_size
        return self.crop_level, self.image_size


@dataclass
class LossConfig:
    """The Asymmetric Loss (lcnet_fast/losses.py)."""

    gamma_pos: float = option(0.0, "focusing exponent of the positive labels")
    gamma_neg: float = option(4.0, "focusing exponent of the negative labels")
    clip: float = option(0.05, "negatives' probabilities are shifted down by this (0 = none)")
    eps: float = option(1e-8, "lower clamp of the probabilities inside the logarithms")
    reduction: str = option("sum", "sum | mean of the per-label losses of a batch")


@dataclass
class OptimConfig:
    """AdamW and the OneCycle learning-rate schedule."""

    lr: float = option(2e-3, "peak learning rate (OneCycleLR's max_lr)")
    # 0.3 by paired measurements (EXPERIMENTS.md, "Deeper stacks"): at 1.0 deeper LLCD stacks
    # trained slowly and varied by seed; the paper presets pin 1.0
    decoder_lr_scale: float = option(
        0.3,
        "learning rate of everything outside the timm backbone body (token projection, decoder, "
        "label graph, head) relative to optim.lr",
    )
    weight_decay: float = option(
        1e-4, "AdamW weight decay on matrices (not stated in the paper; ASL/ML-Decoder use 1e-4)"
    )
    betas: list[float] = option([0.9, 0.999], "AdamW betas")
    pct_start: float = option(0.2, "OneCycleLR warm-up fraction (ASL's training script)")
    div_factor: float = option(25.0, "OneCycleLR: initial lr = lr / div_factor")
    final_div_factor: float = option(1e4, "OneCycleLR: final lr = initial lr / final_div_factor")
    grad_clip: float = option(0.0, "max global gradient norm; 0 = no clipping")
    accumulation_steps: int = option(1, "micro-batches per optimizer step")


@dataclass
class TrainConfig:
    """The run: length, device, EMA, evaluation, checkpoints and output."""

    epochs: int = option(6, "training epochs")
    batch_size: int = option(32, "training batch size per process")
    eval_batch_size: int = option(64, "evaluation batch size per process")
    seed: int = option(0, "seed of initialisation, data order and augmentation")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    precision: str = option("auto", "auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32")
    ema: bool = option(True, "keep an exponential moving average of the weights")
    ema_decay: float = option(0.9997, "EMA decay (ASL/ML-Decoder value; the paper states none)")
    ema_warmup: bool = option(True, "EMA decay = min(ema_decay, (1 + n) / (10 + n)) over updates n")
    report_ema: bool = option(
        True, "report (and select best by) the EMA weights; fixed before training"
    )
    eval_every: int = option(1, "validate every N epochs (and always after the last)")
    select_metric: str = option("mAP", "validation metric that picks the best epoch")
    final_weights: str = option("best", "best | last: which weights the final test metrics use")
    threshold: float = option(0.5, "probability threshold of the thresholded metrics (CP, CR, ...)")
    collapse_spread: float = option(
        0.02,
        "scores whose spread across images (mean per-class std, metrics.py) is below this are "
        "reported as a collapsed run: the model answers the same for every image",
    )
    max_weight_growth: float = option(
        100.0,
        "divergence guard: stop when the global weight norm exceeds this multiple of its initial "
        "value (working runs stay within 2x; lr 1e2 passes 100x in two steps); 0 = off",
    )
    collective_timeout_s: float = option(
        300.0,
        "torchrun: seconds a collective may wait for the other ranks before the run stops with a "
        "message naming the stalled rank",
    )
    log_every: int = option(10, "progress line every N optimizer steps; 0 = none")
    checkpoint_every_steps: int = option(
        0, "also save `last` every N optimizer steps (mid-epoch resume); 0 = per epoch only"
    )
    output: str = option("", 'run directory; "" = runs/<name or timestamp>')
    name: str = option("", "run name (the default run directory's name)")
    compile: bool = option(False, "torch.compile the model")


@dataclass
class RunConfig:
    """The whole run config: one section per concern (``--help`` lists every key)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        checks = [
            (
                self.data.dataset in ("synthetic", "coco", "voc", "csv"),
                "data.dataset",
                "one of synthetic, coco, voc, csv",
            ),
            (
                self.data.synthetic_kind in ("themes", "small_objects"),
                "data.synthetic_kind",
                "themes or small_objects",
            ),
            (self.model.arch in ("lcnet", "pooled"), "model.arch", "lcnet or pooled"),
            (
                self.model.llcd_reading in ("literal", "residual"),
                "model.llcd_reading",
                "literal or residual",
            ),
            (self.model.crop_level >= 1, "model.crop_level", ">= 1"),
            (self.model.image_size >= 8, "model.image_size", ">= 8"),
            (
                self.model.d_model % max(1, self.model.num_heads) == 0,
                "model.d_model",
                f"divisible by model.num_heads={self.model.num_heads}",
            ),
            (self.model.max_views_per_call >= 0, "model.max_views_per_call", ">= 0"),
            (self.optim.lr > 0, "optim.lr", "> 0"),
            (self.optim.decoder_lr_scale > 0, "optim.decoder_lr_scale", "> 0"),
            (self.optim.accumulation_steps >= 1, "optim.accumulation_steps", ">= 1"),
            (self.optim.grad_clip >= 0, "optim.grad_clip", ">= 0"),
            (len(self.optim.betas) == 2, "optim.betas", "two numbers"),
            (self.train.epochs >= 1, "train.epochs", ">= 1"),
            (self.train.batch_size >= 1, "train.batch_size", ">= 1"),
            (self.train.eval_batch_size >= 1, "train.eval_batch_size", ">= 1"),
            (0.0 <= self.train.ema_decay < 1.0, "train.ema_decay", "in [0, 1)"),
            (
                self.train.precision in ("auto", "bf16", "fp32"),
                "train.precision",
                "auto, bf16 or fp32",
            ),
            (self.train.final_weights in ("best", "last"), "train.final_weights", "best or last"),
            (
                not self.train.report_ema or self.train.ema,
                "train.report_ema",
                "false when train.ema is false (there are no EMA weights to report)",
            ),
            (self.train.eval_every >= 1, "train.eval_every", ">= 1"),
            (0.0 <= self.train.collapse_spread < 0.5, "train.collapse_spread", "in [0, 0.5)"),
            (
                self.train.max_weight_growth == 0 or self.train.max_weight_growth > 1,
                "train.max_weight_growth",
                "0 (off) or > 1",
            ),
            (self.train.collective_timeout_s > 0, "train.collective_timeout_s", "> 0"),
            (0.0 <= self.data.val_fraction < 1.0, "data.val_fraction", "in [0, 1)"),
            (
                len(self.data.mean) == 3 and len(self.data.std) == 3,
                "data.mean/std",
                "three numbers each",
            ),
            (self.loss.reduction in ("sum", "mean"), "loss.reduction", "sum or mean"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"config {key} must be {expected}")
        if (
            self.data.dataset == "synthetic"
            and self.data.synthetic_image_size != self.model.crop_level * self.model.image_size
        ):
            raise ConfigError(
                f"data.synthetic_image_size ({self.data.synthetic_image_size}) must equal "
                f"model.crop_level * model.image_size "
                f"({self.model.crop_level} * {self.model.image_size})"
            )
        return self


def section_types() -> dict[str, type]:
    """{"data": DataConfig, "model": ModelConfig, ...}, in RunConfig's field order."""
    hints = get_type_hints(RunConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunConfig)}
