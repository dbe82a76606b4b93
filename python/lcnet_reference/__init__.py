"""The LCNet paper, literally, in plain readable PyTorch.

This package is the oracle that `lcnet_fast` is tested against. It favours the paper's wording over
speed: one backbone call per Crop-Forwarding view, `nn.MultiheadAttention` for every attention of
eq. (1), a Python loop over stacked LLCD layers. It never imports `lcnet_fast`.
"""

from lcnet_reference.asl import AsymmetricLoss, asymmetric_loss
from lcnet_reference.backbone import BackboneAdapter
from lcnet_reference.crop_forwarding import crop_views, num_views
from lcnet_reference.label_graph import GATLayer, LabelGraph
from lcnet_reference.llcd import LLCDLayer
from lcnet_reference.model import LCNet
from lcnet_reference.positional import sine_position_encoding_2d

__all__ = [
    "AsymmetricLoss",
    "BackboneAdapter",
    "GATLayer",
    "LCNet",
    "LLCDLayer",
    "LabelGraph",
    "asymmetric_loss",
    "crop_views",
    "num_views",
    "sine_position_encoding_2d",
]
