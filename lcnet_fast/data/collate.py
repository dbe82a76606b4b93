"""DataLoader collate for ``(image, label_vector)`` samples.

Stacks into ``images (B, 3, H, W)`` and ``labels (B, C)`` float32 (with -1 kept). Unlike the default
collate, a size mismatch names the offending sample and both shapes, which is the usual symptom of a
transform that forgot the square resize.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["collate_multilabel"]


def collate_multilabel(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batch) == 0:
        raise ValueError("collate_multilabel: empty batch")
    images, labels = zip(*batch, strict=True)
    for name, items in (("image", images), ("label", labels)):
        wrong = next((x for x in items if not isinstance(x, torch.Tensor)), None)
        if wrong is not None:
            raise TypeError(
                f"collate_multilabel: every {name} must be a tensor (add a transform that "
                f"returns tensors); got {type(wrong).__name__}"
            )
        first = items[0].shape
        for k, x in enumerate(items):
            if x.shape != first:
                raise ValueError(
                    f"collate_multilabel: {name} {k} has shape {tuple(x.shape)}, "
                    f"{name} 0 has {tuple(first)}; resize all images to one square size"
                )
    return torch.stack(images), torch.stack(labels).to(torch.float32)
