"""EXPERIMENTS.md, "What makes LCNet learn": image-token scales and the spread of the scores across
images at initialisation (no training), crop level 1 vs 2, the paper's settings vs the trainer's
defaults, both synthetic scene kinds; mean over initialisation seeds 0-2 on 64 validation images.

usage: python docs/experiments/scripts/initial_token_scales.py
"""
import numpy as np
import torch

from lcnet_fast.config import resolve_config
from lcnet_fast.engine import seeding
from lcnet_fast.engine.data import DeviceViews, build_splits
from lcnet_fast.engine.model import build_model, model_config_from
from lcnet_fast.models.positional import position_table

PAPER = {"model.llcd_reading": "literal", "model.token_norm": False, "model.dropout": 0.1}
SETTINGS = (("paper (literal, no token norm, dropout 0.1)", PAPER), ("new defaults", {}))
torch.set_num_threads(1)
for kind in ("small_objects", "themes"):
    for level in (1, 2):
        for name, ov in SETTINGS:
            stats = []
            for seed in (0, 1, 2):
                overrides = {
                    "data.synthetic_kind": kind,
                    "model.crop_level": level,
                    "data.synthetic_image_size": 64 * level,
                    "data.synthetic_num_train": 64,
                    "data.synthetic_num_val": 64,
                    "data.synthetic_num_test": 1,
                    "train.seed": seed,
                    **ov,
                }
                cfg = resolve_config(overrides=overrides)
                splits = build_splits(cfg.data, cfg.model, seed)
                images = torch.stack([splits.val[i][0] for i in range(64)])
                views = DeviceViews.from_config(cfg.data, cfg.model)(images)
                torch.manual_seed(seeding.derive_seed(seed, seeding.INIT))
                model = build_model(model_config_from(cfg.model, 10, 10), torch.eye(10)).eval()
                with torch.no_grad():
                    tokens, h, w = model.backbone(views, None)
                    table = position_table(h, w, tokens.shape[-1], tokens.device, tokens.dtype)
                    p = torch.sigmoid(model(views))
                stats.append(
                    [
                        tokens.pow(2).mean().sqrt().item(),
                        tokens.std(0).mean().item(),
                        table.pow(2).mean().sqrt().item(),
                        p.std(0).mean().item(),
                    ]
                )
            m = np.mean(stats, 0)
            cells = f"{m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.4f}"
            print(f"| {kind} | {level} | {name} | {cells} |", flush=True)
