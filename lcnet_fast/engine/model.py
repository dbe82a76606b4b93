"""The model of a training run: the recorded model config from the run config (model_config_from)
and the label-graph initialisation from the data (label_graph_init).

Rebuilding a model from a recorded config (build_model, model_from_checkpoint, architecture) is
shared with inference and lives in lcnet_fast/model_config.py; it is re-exported here.
"""

from __future__ import annotations

from lcnet_fast.config import ModelConfig
from lcnet_fast.model_config import (  # noqa: F401 (re-exported: their old home)
    ARCHITECTURE_KEYS,
    RECORDED_DEFAULTS,
    architecture,
    build_model,
    model_from_checkpoint,
)


def model_config_from(cfg: ModelConfig, num_classes: int, label_embedding_dim: int) -> dict:
    """The recorded model config (lcnet_fast/model_config.py) of a new run's model section."""
    backbone_kwargs = {"drop_path_rate": cfg.drop_path_rate} if cfg.drop_path_rate > 0 else {}
    return {
        "arch": cfg.arch,
        "llcd_reading": cfg.llcd_reading,
        "token_norm": cfg.token_norm,
        "position_encoding": cfg.position_encoding,
        "num_classes": num_classes,
        "backbone": cfg.backbone,
        "pretrained": cfg.pretrained,
        "crop_level": cfg.crop_level,
        "image_size": cfg.image_size,
        "d_model": cfg.d_model,
        "num_heads": cfg.num_heads,
        "num_layers": cfg.num_layers,
        "dim_feedforward": cfg.dim_feedforward,
        "dropout": cfg.dropout,
        "num_gat_layers": cfg.num_gat_layers,
        "use_graph": cfg.use_graph,
        "mirror_inputs": cfg.mirror_inputs,
        "backbone_kwargs": backbone_kwargs,
        "max_views_per_call": cfg.max_views_per_call or None,
        "label_embedding_dim": label_embedding_dim,
    }
