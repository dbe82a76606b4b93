"""The recorded model config: what a checkpoint stores to rebuild its model, and the model built
from it.

A recorded `model_config` is the JSON-able part of the LCNet (or pooled baseline) constructor call
plus `label_embedding_dim`: the label-embedding buffer's width (one-hot = num_classes, word vectors
= E) decides state_dict shapes, so a checkpoint can be rebuilt without the word-vector file.
Training writes it (lcnet_fast/engine/model.py: model_config_from); inference, evaluation and
export read it back here. No training code: importing this module loads no lcnet_fast.engine.
"""

from __future__ import annotations

import torch

from lcnet_fast.checkpoint import Checkpoint, compare_model_configs, load_weights_into

__all__ = [
    "ARCHITECTURE_KEYS",
    "RECORDED_DEFAULTS",
    "architecture",
    "build_model",
    "model_from_checkpoint",
]

# settings that change the state_dict or the computation; dropout and max_views_per_call do not
ARCHITECTURE_KEYS = (
    "arch",
    "llcd_reading",
    "token_norm",
    "position_encoding",
    "num_classes",
    "backbone",
    "crop_level",
    "image_size",
    "d_model",
    "num_heads",
    "num_layers",
    "dim_feedforward",
    "num_gat_layers",
    "use_graph",
    "mirror_inputs",
    "backbone_kwargs",
    "label_embedding_dim",
)


# what a checkpoint written before a key existed was trained with
RECORDED_DEFAULTS = {
    "arch": "lcnet",
    "llcd_reading": "literal",
    "token_norm": False,
    "position_encoding": True,
}


def architecture(model_config: dict) -> dict:
    recorded = RECORDED_DEFAULTS | model_config
    return {key: recorded.get(key) for key in ARCHITECTURE_KEYS}


def build_model(
    model_config: dict,
    label_embeddings: torch.Tensor | None = None,
    correlation: torch.Tensor | None = None,
    pretrained: bool | None = None,
) -> torch.nn.Module:
    """LCNet (or the pooled baseline) from a recorded model config. Without embeddings, a zero
    placeholder of the recorded shape is used (the real values come from the checkpoint)."""
    from lcnet_fast.models import LCNet, PooledClassifier

    kwargs = RECORDED_DEFAULTS | dict(model_config)
    if pretrained is not None:
        kwargs["pretrained"] = pretrained
    if kwargs.pop("arch") == "pooled":
        return PooledClassifier(
            kwargs["num_classes"],
            kwargs["backbone"],
            kwargs["pretrained"],
            kwargs["crop_level"] * kwargs["image_size"],
            kwargs["backbone_kwargs"],
        )
    embedding_dim = kwargs.pop("label_embedding_dim")
    if label_embeddings is None:
        label_embeddings = torch.zeros(kwargs["num_classes"], embedding_dim)
    elif tuple(label_embeddings.shape) != (kwargs["num_classes"], embedding_dim):
        raise ValueError(
            f"label_embeddings must be ({kwargs['num_classes']}, {embedding_dim}), "
            f"got {tuple(label_embeddings.shape)}"
        )
    return LCNet(**kwargs, label_embeddings=label_embeddings, correlation=correlation)


def model_from_checkpoint(
    checkpoint: Checkpoint,
    device: torch.device | str = "cpu",
    expected_config: dict | None = None,
    weights: str | None = None,
) -> torch.nn.Module:
    """The checkpoint's model with its reported weights (or the `weights` prefix), in eval mode.

    `expected_config`: when given, the checkpoint's architecture must equal it (clear error if not).
    """
    recorded = checkpoint.model_config
    if expected_config is not None:
        compare_model_configs(
            architecture(recorded), architecture(expected_config), checkpoint.path
        )
    model = build_model(
        recorded, pretrained=False
    )  # never download: the weights come from the file
    prefix = weights or checkpoint.meta["weights"]
    load_weights_into(model, checkpoint.tensors(prefix), f"{checkpoint.path} [{prefix}]")
    return model.to(device).eval()
