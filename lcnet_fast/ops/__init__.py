"""lcnet_fast custom ops: one file per op, backends chosen in _backend.py.

Importing this package loads lcnet_fast._C if it was built (never failing if not; not at all
when LCNET_FAST_NO_EXTENSION=1 is set: then every op runs without it, see build_info());
Triton kernel modules are imported lazily, on first use. Every op takes float64 too, through
its pure-PyTorch reference (the kernels are fp32/fp16/bf16).
"""
from lcnet_fast.ops._backend import BackendUnavailableError, choose_backend, reference_ops
from lcnet_fast.ops.crop_views import crop_views, crop_views_reference
from lcnet_fast.ops.cross_attention import cross_attention, cross_attention_reference
from lcnet_fast.ops.dropout_add_layer_norm import (
    dropout_add_layer_norm,
    dropout_add_layer_norm_reference,
)

__all__ = ["BackendUnavailableError", "choose_backend", "crop_views", "crop_views_reference",
           "cross_attention", "cross_attention_reference", "dropout_add_layer_norm",
           "dropout_add_layer_norm_reference", "reference_ops"]
