"""The fast LCNet model and its parts (same state_dict layout as lcnet_reference)."""

from lcnet_fast.models.backbone import BackboneAdapter
from lcnet_fast.models.crop_forwarding import num_views, split_views
from lcnet_fast.models.head import PerClassLinear
from lcnet_fast.models.label_graph import GATLayer, LabelGraph
from lcnet_fast.models.lcnet import LCNet
from lcnet_fast.models.llcd import LLCDLayer
from lcnet_fast.models.pooled import PooledClassifier

__all__ = [
    "BackboneAdapter",
    "GATLayer",
    "LCNet",
    "LLCDLayer",
    "LabelGraph",
    "PerClassLinear",
    "PooledClassifier",
    "num_views",
    "split_views",
]
