"""lcnet_fast custom ops: one module per op, backends chosen in _backend.py.

Each op module (crop_views.py, cross_attention.py, dropout_add_layer_norm.py) holds the public
function, its pure-PyTorch reference, the fake kernels and autograd of its custom ops and its
backend rule; lcnet_fast/ops/triton/ holds the Triton kernels and their launchers only, and
_shapes.py the output allocations both share. Importing this package loads lcnet_fast._C if it
was built (never failing if not; not at all when LCNET_FAST_NO_EXTENSION=1 is set: then every op
runs without it, see build_info()) and defines the Triton ops lcnet_fast::<op>_triton; their
kernel modules (and triton itself) are imported on first call. Every op takes float64 too,
through its pure-PyTorch reference (the kernels are fp32/fp16/bf16).
"""

from lcnet_fast.ops._backend import BackendUnavailableError, choose_backend, reference_ops
from lcnet_fast.ops.crop_views import crop_views, crop_views_reference
from lcnet_fast.ops.cross_attention import cross_attention, cross_attention_reference
from lcnet_fast.ops.dropout_add_layer_norm import (
    dropout_add_layer_norm,
    dropout_add_layer_norm_reference,
)

__all__ = [
    "BackendUnavailableError",
    "choose_backend",
    "crop_views",
    "crop_views_reference",
    "cross_attention",
    "cross_attention_reference",
    "dropout_add_layer_norm",
    "dropout_add_layer_norm_reference",
    "reference_ops",
]
