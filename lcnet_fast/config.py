"""The run configuration: every number a training run depends on, in one typed, nested dataclass.

Resolution order (later wins): dataclass defaults < ``--preset`` < ``--config file.yaml`` < CLI
``--key value`` overrides. The resolved config is written to ``<run dir>/config.yaml`` so a run can
be repeated from that file alone. Keys are addressed as ``section.field`` (``--optim.lr 1e-3``) or,
when the field name is unique across sections, as the bare field (``--lr 1e-3``); dashes and
underscores are interchangeable (``--batch-size`` == ``--batch_size``).

The defaults are the built-in synthetic job (``python -m lcnet_fast.train`` with no argument): a
tiny randomly initialised backbone that reaches mAP >= 70 on the synthetic test split in a few
minutes on 2 CPU cores. The presets hold the paper's settings (section 4.1): TResNet-L, 448 px
views, crop level 3 (4 for the rope dataset), 6 LLCD layers, ASL gamma- = 4, gamma+ = 0, clip 0.05,
lr 5e-5, batch 56, 80 epochs. Values the paper does not state (weight decay, EMA decay, OneCycle
warm-up) follow the ASL / ML-Decoder training code the paper builds on, and are marked below.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from lcnet_fast.errors import ConfigError

__all__ = [
    "ConfigError",
    "RunConfig",
    "PRESETS",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_yaml",
    "parse_override_tokens",
    "merge_config",
    "resolve_config",
    "save_config",
]


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic | coco | voc | csv
    root: str = ""  # dataset root (voc: VOCdevkit parent or VOC<year> dir; coco: see below)
    # coco: image dirs and annotation json per split, relative to root unless absolute
    coco_train_images: str = "train2014"
    coco_train_annotations: str = "annotations/instances_train2014.json"
    coco_test_images: str = "val2014"
    coco_test_annotations: str = "annotations/instances_val2014.json"
    # an explicit validation split (val_split "val"); "" = none (then data.val_fraction of train)
    coco_val_images: str = ""
    coco_val_annotations: str = ""
    # voc
    voc_year: str = "2007"
    # csv: one file per split (relative to root unless absolute); the image paths inside are
    # relative to csv_image_dir
    csv_train: str = "train.csv"
    csv_val: str = ""
    csv_test: str = "test.csv"
    csv_image_dir: str = ""
    train_split: str = "train"
    val_split: str = "val"  # "" = no validation split (then `val_fraction` of train, or none)
    test_split: str = "test"
    val_fraction: float = 0.0  # held out of train (by seed) when the dataset has no val split
    skip_bad_images: bool = (
        False  # passed to the datasets: skip unreadable images instead of failing
    )
    num_workers: int = 0  # DataLoader workers; 0 keeps everything in the main process
    augment: str = "flip"  # default (flip + RandAugment + Cutout) | flip | none
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # ImageNet
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # synthetic dataset (lcnet_fast.data.SyntheticScenes)
    synthetic_num_train: int = 1500
    synthetic_num_val: int = 200
    synthetic_num_test: int = 500
    synthetic_image_size: int = 128  # full image side; must equal crop_level * image_size
    synthetic_num_classes: int = 10
    synthetic_seed: int = 0
    synthetic_cache: bool = True  # keep drawn images in memory across epochs (main process only)
    # themes (the main job's scenes) | small_objects (the benchmark for crops, depth and graph:
    # lcnet_fast/data/small_objects.py)
    synthetic_kind: str = "themes"
    # label graph initialisation
    label_embeddings: str = "one_hot"  # one_hot | path to a word-vector file (load_word_vectors)
    correlation_init: str = "cosine"  # cosine (of the embeddings) | cooccurrence (of train labels)


@dataclass
class ModelConfig:
    # lcnet | pooled: the plain baseline (backbone on the whole crop_level*image_size input,
    # global average pooling, linear head; lcnet_fast/models/pooled.py). Only backbone,
    # pretrained, crop_level * image_size and drop_path_rate apply to it.
    arch: str = "lcnet"
    backbone: str = "test_resnet"  # timm's tiny test ResNet: the synthetic job fits 2 CPU cores
    pretrained: bool = False
    crop_level: int = 2
    image_size: int = 64  # backbone view size M; the model input is crop_level * M
    d_model: int = 128
    num_heads: int = 4
    num_layers: int = 2
    dim_feedforward: int = 256
    # defaults below marked (*) depart from the paper; chosen by the paired measurements in
    # EXPERIMENTS.md ("What makes LCNet learn"); the paper presets pin the paper's values
    dropout: float = 0.0  # (*) paper code: 0.1
    num_gat_layers: int = 1
    use_graph: bool = True
    mirror_inputs: bool = False
    max_views_per_call: int = 0  # views per backbone call; 0 = every view of the batch in one call
    drop_path_rate: float = 0.0  # passed to timm as backbone_kwargs when > 0
    # eq. (1) of the paper: literal (as printed: no residual path for the label queries) |
    # residual (INT3 = AddNorm(DO(MHA2) + INT1), Q' = AddNorm(DO(INT4) + INT3)) (*)
    llcd_reading: str = "residual"
    token_norm: bool = True  # (*) LayerNorm on the projected backbone tokens (before positions)
    position_encoding: bool = True  # add the sine position + view embedding to the tokens

    def view_geometry(self) -> tuple[int, int]:
        """(crop level, view size) of the model's input views. The pooled baseline takes the
        whole crop_level * image_size image as one view."""
        if self.arch == "pooled":
            return 1, self.crop_level * self.image_size
        return self.crop_level, self.image_size


@dataclass
class LossConfig:
    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05
    eps: float = 1e-8
    reduction: str = "sum"


@dataclass
class OptimConfig:
    lr: float = 2e-3
    # learning rate of everything outside the timm backbone body (token projection, decoder,
    # label graph, head) relative to optim.lr
    decoder_lr_scale: float = 1.0
    weight_decay: float = 1e-4  # not stated in the paper; ASL/ML-Decoder use 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    pct_start: float = 0.2  # OneCycleLR warm-up fraction (ASL's training script)
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    grad_clip: float = 0.0  # max global grad norm; 0 = no clipping
    accumulation_steps: int = 1


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 32  # per process
    eval_batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bf16 | fp32
    ema: bool = True
    ema_decay: float = 0.9997  # ASL/ML-Decoder value; the paper does not state one
    ema_warmup: bool = True  # decay = min(ema_decay, (1 + n) / (10 + n)) over updates n
    report_ema: bool = True  # report (and select best by) the EMA weights; fixed before training
    eval_every: int = 1  # validate every N epochs (and always after the last)
    select_metric: str = "mAP"  # validation metric that picks `best`
    final_weights: str = "best"  # best | last: which checkpoint the final test metrics use
    threshold: float = 0.5
    # validation / test scores whose spread across images (mean per-class std, metrics.py) is
    # below this are reported as a collapsed run: the model answers the same for every image
    collapse_spread: float = 0.02
    # divergence guard: stop when the global weight norm exceeds this multiple of its value at the
    # start of training (working runs stay within 2x; lr 1e2 passes 100x in two steps); 0 = off
    max_weight_growth: float = 100.0
    # torchrun: seconds a collective (all-reduce, barrier, gather) may wait for the other ranks
    # before the run stops with a message naming the stalled rank
    collective_timeout_s: float = 300.0
    log_every: int = 10  # progress line every N optimizer steps
    checkpoint_every_steps: int = 0  # also save `last` every N optimizer steps (mid-epoch resume)
    output: str = ""  # run directory; "" = runs/<name or timestamp>
    name: str = ""
    compile: bool = False  # torch.compile the model


@dataclass
class RunConfig:
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


# The paper's settings (section 4.1). Each preset is a nested override dict on top of the defaults.
_PAPER = {
    "model": {
        # TResNet-L with timm's 448-px ImageNet weights (views are 448 px); needs network or a cache
        "backbone": "tresnet_l.miil_in1k_448",
        "pretrained": True,
        "crop_level": 3,
        "image_size": 448,
        "d_model": 768,
        "num_heads": 8,
        "num_layers": 6,
        "dim_feedforward": 2048,
        "dropout": 0.1,
        "num_gat_layers": 1,
        # eq. (1) as printed, without our token LayerNorm: the paper's model
        "llcd_reading": "literal",
        "token_norm": False,
    },
    "loss": {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},
    "optim": {"lr": 5e-5},
    "train": {
        "epochs": 80,
        "batch_size": 56,
        "eval_batch_size": 56,
        "ema": True,
        "ema_decay": 0.9997,
    },
    # RandAugment + Cutout, as in the ASL / ML-Decoder recipes the paper follows
    "data": {"augment": "default", "num_workers": 8},
}


def _preset(data: dict, model: dict | None = None) -> dict:
    out = copy.deepcopy(_PAPER)
    out["data"].update(data)
    out["model"].update(model or {})
    return out


PRESETS: dict[str, dict] = {
    # COCO 2014: train2014 to train, val2014 to test (as in the paper); validation: 5 % of train
    "paper-coco": _preset({"dataset": "coco", "val_split": "", "val_fraction": 0.05}),
    # VOC 2007: train / val / test
    "paper-voc": _preset({"dataset": "voc", "voc_year": "2007"}),
    # Synthetic fibre rope damage: CSV files with the paper's 60/20/20 split; crop level 4
    "paper-rope": _preset(
        {"dataset": "csv", "csv_train": "train.csv", "csv_val": "val.csv", "csv_test": "test.csv"},
        {"crop_level": 4},
    ),
}


# ----------------------------------------------------------------------------- dict <-> dataclass


def config_to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def _sections() -> dict[str, type]:
    return {f.name: get_type_hints(RunConfig)[f.name] for f in dataclasses.fields(RunConfig)}


def _field_types(section_cls: type) -> dict[str, Any]:
    return get_type_hints(section_cls)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field's type, or raise ConfigError naming the key."""
    origin = get_origin(annotation)
    if origin is list:
        (item_type,) = get_args(annotation)
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config {key} must be a list, got {value!r}")
        return [_coerce(v, item_type, key) for v in value]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"config {key} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"config {key} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key} must be an integer, got {value!r}") from None
        if not as_float.is_integer():
            raise ConfigError(f"config {key} must be an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"config {key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config {key} must be a number, got {value!r}") from None
    if annotation is str:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config {key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"config {key}: unsupported field type {annotation!r}")


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def _all_keys() -> list[str]:
    return [f"{s}.{f}" for s, cls in _sections().items() for f in _field_types(cls)]


def canonical_key(key: str) -> str:
    """'lr' / 'optim.lr' / 'batch-size' -> 'section.field', or ConfigError."""
    key = key.replace("-", "_")
    full = _all_keys()
    if key in full:
        return key
    matches = [k for k in full if k.split(".", 1)[1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"config key {key!r} is ambiguous; use one of {', '.join(matches)}")
    raise _unknown(key, full + sorted({k.split(".", 1)[1] for k in full}))


def _flatten(overrides: dict, prefix: str = "") -> dict[str, Any]:
    """Nested {'optim': {'lr': 1}} or dotted {'optim.lr': 1} -> {'optim.lr': 1}."""
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name.replace("-", "_") in _sections():
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def apply_overrides(cfg: RunConfig, overrides: dict) -> RunConfig:
    """Return a copy of cfg with the (nested or dotted) overrides applied, type-checked."""
    cfg = copy.deepcopy(cfg)
    for key, value in _flatten(overrides).items():
        full = canonical_key(key)
        section, name = full.split(".", 1)
        target = getattr(cfg, section)
        setattr(target, name, _coerce(value, _field_types(type(target))[name], full))
    return cfg


def config_from_dict(data: dict) -> RunConfig:
    """A RunConfig from a (possibly partial) nested dict; unknown keys are errors."""
    return apply_overrides(RunConfig(), data)


# ----------------------------------------------------------------------------- files and CLI


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def save_config(cfg: RunConfig, path: str) -> None:
    """Write the resolved config as YAML, atomically (a reader never sees half a file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config_to_dict(cfg), handle, sort_keys=False)
    os.replace(tmp, path)


def _parse_scalar(text: str) -> Any:
    """CLI text -> YAML scalar ('1e-3' -> 0.001, 'true' -> True); the field type decides after."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_override_tokens(tokens: list[str]) -> dict[str, Any]:
    """['--optim.lr', '1e-3', '--ema', '--k=v'] -> {'optim.lr': 1e-3, 'ema': True, 'k': 'v'}.

    A flag with no value (followed by another --flag or the end) means true, so boolean options
    work as switches (``--skip-bad-images``).
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"expected --key value, got {token!r}")
        key = token[2:]
        if "=" in key:
            key, text = key.split("=", 1)
            out[key] = _parse_scalar(text)
            i += 1
        elif i + 1 < len(tokens) and not (
            tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2
        ):
            out[key] = _parse_scalar(tokens[i + 1])
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def resolve_config(
    preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> RunConfig:
    """defaults < preset < YAML file < overrides. A YAML file may name a preset (`preset: NAME`)."""
    return merge_config(preset, config_file, overrides).validate()


def merge_config(
    preset: str | None = None, config_file: str | None = None, overrides: dict | None = None
) -> RunConfig:
    """The layering of `resolve_config` without the final validation (for callers that change
    values afterwards, e.g. the ablation's rows, and validate then)."""
    file_data = load_yaml(config_file) if config_file else {}
    file_preset = file_data.pop("preset", None)
    chosen = preset or file_preset
    cfg = RunConfig()
    if chosen:
        if chosen not in PRESETS:
            raise ConfigError(
                f"unknown preset {chosen!r}; choose one of {', '.join(sorted(PRESETS))}"
            )
        cfg = apply_overrides(cfg, PRESETS[chosen])
    cfg = apply_overrides(cfg, file_data)
    return apply_overrides(cfg, overrides or {})
