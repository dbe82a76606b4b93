"""lcnet_fast: LCNet multi-label image classification with fused PyTorch custom ops.

`import lcnet_fast` never needs the compiled extension: every op has a pure-PyTorch fallback, and
`build_info()` says which backends (cpp, cuda, triton) are available and why not.
"""

from lcnet_fast import ops
from lcnet_fast._build_info import build_info
from lcnet_fast.inference import Predictor
from lcnet_fast.losses import AsymmetricLoss, asymmetric_loss
from lcnet_fast.models import LCNet, LLCDLayer, PooledClassifier

__version__ = "0.1.0"
__all__ = [
    "AsymmetricLoss",
    "LCNet",
    "LLCDLayer",
    "PooledClassifier",
    "Predictor",
    "asymmetric_loss",
    "build_info",
    "ops",
    "__version__",
]
