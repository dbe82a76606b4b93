"""LCNet, assembled as the paper describes it (Fig. 2): backbone over each Crop-Forwarding view,
label graph + GAT, a stack of LLCD layers, and a per-class linear head."""

import torch
from torch import nn

from lcnet_reference.backbone import BackboneAdapter
from lcnet_reference.crop_forwarding import crop_views, num_views
from lcnet_reference.label_graph import LabelGraph
from lcnet_reference.llcd import LLCDLayer
from lcnet_reference.positional import sine_position_encoding_2d


class PerClassLinear(nn.Module):
    """logit[b, n] = <q[b, n, :], weight[n, :]> + bias[n]: one linear classifier per label token."""

    def __init__(self, num_classes: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, d_model))
        self.bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.normal_(self.weight, std=d_model**-0.5)

    def forward(self, label_tokens: torch.Tensor) -> torch.Tensor:
        return (label_tokens * self.weight).sum(dim=-1) + self.bias


class LCNet(nn.Module):
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
        llcd_reading: str = "literal",
        token_norm: bool = False,
        position_encoding: bool = True,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes, self.crop_level, self.image_size = num_classes, crop_level, image_size
        self.mirror_inputs = mirror_inputs
        self.backbone = BackboneAdapter(
            backbone, d_model, pretrained, token_norm, **(backbone_kwargs or {})
        )
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
        """(B, 3, k*M, k*M) -> (B, T, d): each view's tokens + sine position + view embedding."""
        tokens = []
        for index, view in enumerate(crop_views(images, self.crop_level)):
            view_tokens, height, width = self.backbone(view)
            if self.view_embed is None:  # position_encoding=False: content only
                tokens.append(view_tokens)
                continue
            position = sine_position_encoding_2d(
                height,
                width,
                view_tokens.shape[-1],
                device=view_tokens.device,
                dtype=view_tokens.dtype,
            )
            tokens.append(view_tokens + position + self.view_embed[index])
        return torch.cat(tokens, dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, k*M, k*M) normalised images -> (B, num_classes) logits."""
        kv_img = self.image_tokens(images)
        batch = kv_img.shape[0]
        kv_graph = self.label_graph().unsqueeze(0).expand(batch, -1, -1)
        q_lbl = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)
        if self.mirror_inputs:
            kv_img, kv_graph = kv_graph, kv_img
        for layer in self.decoder:
            q_lbl, kv_img, kv_graph = layer(q_lbl, kv_img, kv_graph)
        return self.head(q_lbl)
