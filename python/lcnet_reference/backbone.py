"""Backbone adapter: a timm model's last feature map, projected to d_model tokens."""

import timm
import torch
from torch import nn


def feature_map_to_tokens(features: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(B, C, h, w) feature map or (B, T, C) ViT tokens -> ((B, h*w, C), h, w).

    A token sequence must form a square grid (class/register tokens are not accepted: timm's
    features_only ViTs already drop them and return NCHW).
    """
    if features.dim() == 4:
        batch, channels, height, width = features.shape
        return features.flatten(2).transpose(1, 2), height, width
    if features.dim() == 3:
        batch, tokens, channels = features.shape
        side = int(round(tokens**0.5))
        if side * side != tokens:
            raise ValueError(f"backbone returned {tokens} tokens, which is not a square grid")
        return features, side, side
    raise ValueError(
        f"backbone output must be (B, C, h, w) or (B, T, C), got {tuple(features.shape)}"
    )


class BackboneAdapter(nn.Module):
    """timm feature extractor (last stage) + a linear 1x1 projection to d_model.

    `body` is `timm.create_model(name, pretrained=..., features_only=True, out_indices=(-1,))`,
    so any timm CNN or ViT with feature extraction support works.
    """

    def __init__(
        self,
        name: str,
        d_model: int,
        pretrained: bool = False,
        token_norm: bool = False,
        **timm_kwargs,
    ):
        super().__init__()
        self.body = timm.create_model(
            name, pretrained=pretrained, features_only=True, out_indices=(-1,), **timm_kwargs
        )
        self.num_channels = self.body.feature_info.channels()[-1]
        self.reduction = self.body.feature_info.reduction()[-1]
        self.input_proj = nn.Linear(self.num_channels, d_model)
        # token_norm: LayerNorm the projected features, so image content enters the decoder at
        # unit scale next to the position encoding, whatever the backbone's output scale
        self.token_norm = nn.LayerNorm(d_model) if token_norm else None

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, 3, M, M) -> ((B, h*w, d_model) tokens, h, w)."""
        tokens, height, width = feature_map_to_tokens(self.body(images)[-1])
        tokens = self.input_proj(tokens)
        if self.token_norm is not None:
            tokens = self.token_norm(tokens)
        return tokens, height, width
