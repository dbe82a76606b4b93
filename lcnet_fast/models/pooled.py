"""The plain baseline LCNet is measured against: backbone -> global average pooling -> linear.

What a user would train instead of LCNet: the same timm backbone (``features_only``, last stage,
as LCNet's adapter uses it) on the whole input image at full resolution, its feature map averaged
over space and one linear layer to the class logits. It takes LCNet's input, a
``(B, 3, S, S)`` normalised image (``S = crop_level * image_size`` in the run config), or the
same image as the single view ``(B, 1, 3, S, S)`` that ``lcnet_fast.ops.crop_views`` cuts at crop
level 1, so the drivers feed it with the same loaders. No crops, no label graph, no decoder.
"""

import timm
import torch
from torch import nn


class PooledClassifier(nn.Module):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "tresnet_l",
        pretrained: bool = False,
        input_size: int = 448,
        backbone_kwargs: dict | None = None,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        # the preprocessing contract shared with LCNet: one view of the whole input image
        self.crop_level, self.image_size = 1, int(input_size)
        self.body = timm.create_model(
            backbone,
            pretrained=pretrained,
            features_only=True,
            out_indices=(-1,),
            **(backbone_kwargs or {}),
        )
        self.fc = nn.Linear(self.body.feature_info.channels()[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) or (B, 1, 3, S, S) normalised images -> (B, num_classes) logits."""
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError(
                "images must be a floating-point tensor (normalised), got "
                f"{getattr(images, 'dtype', type(images).__name__)}"
            )
        if images.dim() == 5 and images.shape[1] == 1:
            images = images[:, 0]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, S, S) or (B, 1, 3, S, S), got {tuple(images.shape)}"
            )
        features = self.body(images)[-1]
        if features.dim() == 3:  # (B, T, C) tokens of a ViT without NCHW output
            pooled = features.mean(dim=1)
        else:
            pooled = features.mean(dim=(2, 3))
        return self.fc(pooled)
