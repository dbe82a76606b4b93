"""Backbone adapter (fast path): every view of every image through the backbone in one call.

Parameters match lcnet_reference.BackboneAdapter (`body` = timm features_only model, `input_proj`
= Linear(C, d_model)). `max_views_per_call` bounds how many view-images go into one backbone call
(memory); the views are ordered view-major, so a bound equal to the batch size reproduces the
reference's one-call-per-view schedule exactly, BatchNorm training statistics included.
One call over all B*V views normalises BatchNorm (in train mode) over all views together — a
different, equally valid batch statistic than per-view calls; in eval mode both are identical.
"""

import timm
import torch
from torch import nn


def feature_map_to_tokens(features: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(B, C, h, w) map or (B, T, C) square token grid -> ((B, h*w, C), h, w)."""
    if features.dim() == 4:
        _, _, height, width = features.shape
        return features.flatten(2).transpose(1, 2), height, width
    if features.dim() == 3:
        tokens = features.shape[1]
        side = int(round(tokens**0.5))
        if side * side != tokens:
            raise ValueError(f"backbone returned {tokens} tokens, which is not a square grid")
        return features, side, side
    raise ValueError(
        f"backbone output must be (B, C, h, w) or (B, T, C), got {tuple(features.shape)}"
    )


class BackboneAdapter(nn.Module):
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

    def forward(self, views: torch.Tensor, max_views_per_call: int | None = None):
        """(B, V, 3, M, M) -> ((B, V*h*w, d_model) tokens ordered view by view, h, w)."""
        batch, num_views = views.shape[:2]
        flat = views.transpose(0, 1).reshape(num_views * batch, *views.shape[2:])  # view-major
        if not max_views_per_call:  # one call, no split (keeps exported graphs split-free)
            maps = [self.body(flat)[-1]]
        else:
            maps = [self.body(chunk)[-1] for chunk in flat.split(max_views_per_call)]
        tokens, height, width = feature_map_to_tokens(
            maps[0] if len(maps) == 1 else torch.cat(maps)
        )
        tokens = self.input_proj(tokens)  # (V*B, h*w, d)
        if self.token_norm is not None:
            tokens = self.token_norm(tokens)
        tokens = tokens.reshape(num_views, batch, height * width, -1).transpose(0, 1)
        return tokens.reshape(batch, num_views * height * width, -1), height, width
