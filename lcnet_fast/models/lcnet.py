"""LCNet, fast path: one backbone call over all Crop-Forwarding views, a once-per-batch label graph,
fused-projection LLCD layers. Same constructor and state_dict as lcnet_reference.LCNet."""

import torch
from torch import nn

from lcnet_fast.models.backbone import BackboneAdapter
from lcnet_fast.models.crop_forwarding import check_views, num_views, split_views
from lcnet_fast.models.head import PerClassLinear
from lcnet_fast.models.label_graph import LabelGraph
from lcnet_fast.models.llcd import LLCDLayer
from lcnet_fast.models.positional import position_table


class LCNet(nn.Module):
    """``LCNet.from_pretrained(path)`` (a trained run's model) is attached by
    lcnet_fast/inference.py: models/ read no files. Any import of this module runs
    ``lcnet_fast/__init__.py`` first, which imports lcnet_fast.inference, so the method is always
    there."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "tresnet_l",
        pretrained: bool = False,
        crop_level: int = 3,
        image_size: int = 448,
        d_model: int = 768,
        num_heads: int = 8,
        num_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        num_gat_layers: int = 1,
        label_embeddings: torch.Tensor | None = None,
        correlation: torch.Tensor | None = None,
        use_graph: bool = True,
        mirror_inputs: bool = False,
        backbone_kwargs: dict | None = None,
        max_views_per_call: int | None = None,
        llcd_reading: str = "literal",
        token_norm: bool = False,
        position_encoding: bool = True,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if max_views_per_call is not None and max_views_per_call < 1:
            raise ValueError(
                f"max_views_per_call must be None (all views in one call) or >= 1, "
                f"got {max_views_per_call}"
            )
        self.num_classes, self.crop_level, self.image_size = num_classes, crop_level, image_size
        self.mirror_inputs = mirror_inputs
        self.max_views_per_call = max_views_per_call
        self.backbone = BackboneAdapter(
            backbone, d_model, pretrained, token_norm, **(backbone_kwargs or {})
        )
        # position_encoding=False: tokens carry image content only (no sine position, no view
        # embedding), so attention can only select by content
        self.view_embed = (
            nn.Parameter(torch.randn(num_views(crop_level), d_model) * 0.02)
            if position_encoding
            else None
        )
        self.label_graph = LabelGraph(
            num_classes,
            d_model,
            num_heads,
            dim_feedforward,
            dropout,
            num_gat_layers,
            label_embeddings,
            correlation,
            use_graph,
        )
        self.query_embed = nn.Embedding(num_classes, d_model)
        self.decoder = nn.ModuleList(
            LLCDLayer(d_model, num_heads, dim_feedforward, dropout, llcd_reading)
            for _ in range(num_layers)
        )
        self.head = PerClassLinear(num_classes, d_model)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, k*M, k*M) images or (B, V, 3, M, M) views -> (B, V*h*w, d): backbone tokens +
        sine position + view embedding."""
        if isinstance(images, torch.Tensor) and images.dim() == 5:
            check_views(images, self.crop_level)
            views = images
        else:
            views = split_views(images, self.crop_level)
        # None = every view of every image in one call: measured faster on CPU too (BENCHMARKS.md)
        tokens, height, width = self.backbone(views, self.max_views_per_call)
        if self.view_embed is None:
            return tokens
        position = position_table(height, width, tokens.shape[-1], tokens.device, tokens.dtype)
        table = (position[None, :, :] + self.view_embed[:, None, :].to(tokens.dtype)).flatten(0, 1)
        return tokens + table

    def forward(self, images: torch.Tensor, return_attention: bool = False):
        """(B, 3, k*M, k*M) normalised images -> (B, num_classes) logits.

        Already-cut views (B, V, 3, M, M) are taken as well, e.g. lcnet_fast.ops.crop_views'
        output (uint8 images normalised and cut in one pass); split_views(images) gives the
        same logits as images.

        return_attention=True returns (logits, [per LLCD layer: MHA2's attention of the N label
        queries over the T = V*h*w image tokens, (B, H, N, T) per head]); tokens are ordered view
        by view (global view, then the tiles row-major), each view's h x w grid row-major. See
        lcnet_fast.visualize.attention for mapping them back to the image.
        """
        if return_attention and self.mirror_inputs:
            raise ValueError(
                "return_attention: with mirror_inputs=True the label queries attend "
                "to the graph nodes, not to image tokens; no image attention map"
            )
        kv_img = self.image_tokens(images)
        batch = kv_img.shape[0]
        # image-independent inputs stay (1, N, d) expanded: layers detect the stride-0 batch dim
        kv_graph = self.label_graph().unsqueeze(0).expand(batch, -1, -1)
        q_lbl = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)
        if self.mirror_inputs:
            kv_img, kv_graph = kv_graph, kv_img
        last = len(self.decoder) - 1
        attentions = []
        for index, layer in enumerate(self.decoder):
            # the last layer's KV outputs never reach the logits: skip computing them
            if return_attention:
                q_lbl, kv_img, kv_graph, weights = layer(
                    q_lbl, kv_img, kv_graph, compute_kv=index < last, return_attention=True
                )
                attentions.append(weights)
            else:
                q_lbl, kv_img, kv_graph = layer(q_lbl, kv_img, kv_graph, compute_kv=index < last)
        logits = self.head(q_lbl)
        return (logits, attentions) if return_attention else logits
