"""The paper's settings (section 4.1) as presets: ``--preset paper-coco | paper-voc | paper-rope``.

TResNet-L, 448 px views, crop level 3 (4 for the rope dataset), 6 LLCD layers, ASL gamma- = 4,
gamma+ = 0, clip 0.05, lr 5e-5, batch 56, 80 epochs. Each preset is a nested override dict applied
on top of the defaults (lcnet_fast/config/sections.py), below a --config file and the command line.
"""

from __future__ import annotations

import copy

__all__ = ["PRESETS"]

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
    # one learning rate for the whole model, as the paper trains it
    "optim": {"lr": 5e-5, "decoder_lr_scale": 1.0},
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
