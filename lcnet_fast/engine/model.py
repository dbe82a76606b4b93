"""The model of a training run: the recorded model config from the run config (model_config_from)
and the label-graph initialisation from the data (label_graph_init).

Rebuilding a model from a recorded config (build_model, model_from_checkpoint, architecture) is
shared with inference and lives in lcnet_fast/model_config.py; it is re-exported here.
"""

from __future__ import annotations

import torch

from lcnet_fast.config import ConfigError, ModelConfig, RunConfig
from lcnet_fast.engine.data import Splits
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


def label_graph_init(cfg: RunConfig, splits: Splits) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(label embeddings (C, E), correlation init (C, C) or None = cosine of the embeddings)."""
    num_classes = len(splits.classes)
    if cfg.data.label_embeddings == "one_hot":
        embeddings = torch.eye(num_classes)
    else:
        from lcnet_fast.data import load_word_vectors

        embeddings = torch.as_tensor(
            load_word_vectors(cfg.data.label_embeddings, splits.classes), dtype=torch.float32
        )
    if cfg.data.correlation_init == "cosine":
        return embeddings, None
    if cfg.data.correlation_init == "cooccurrence":
        from lcnet_fast.data import cooccurrence

        return embeddings, torch.as_tensor(cooccurrence(splits.train.labels), dtype=torch.float32)
    raise ConfigError(
        f"data.correlation_init must be cosine or cooccurrence, got {cfg.data.correlation_init!r}"
    )
