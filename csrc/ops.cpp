// Every lcnet_fast op schema, and nothing else. Kernels register per backend in
// csrc/cpu/<op>.cpp and csrc/cuda/<op>.cpp; fake (meta) kernels live in Python
// (lcnet_fast/ops/<op>.py, torch.library.register_fake).
#include <torch/csrc/stable/library.h>

STABLE_TORCH_LIBRARY(lcnet_fast, m) {
  // images: uint8 (B, H, W, 3), H == W == level * size
  // mean, std: float32 (3,) on the device of images
  // returns (B, V, 3, size, size), V = 1 if level == 1 else level*level + 1;
  // channels_last=True gives strides of a (B, V, size, size, 3) buffer.
  m.def(
      "crop_views(Tensor images, int level, int size, Tensor mean, Tensor std, "
      "ScalarType out_dtype, bool channels_last) -> Tensor");

  // x, residual: (..., D) float32/float16/bfloat16 (same dtype and shape)
  // weight, bias: (D,) of x's dtype or float32; mask: None or bool/uint8 (..., D) keep-mask
  // out = layer_norm(x * mask * scale + residual) over D; returns (out (..., D) x dtype,
  // mean (...) float32, rstd (...) float32), mean/rstd saved for the backward.
  m.def(
      "dropout_add_layer_norm(Tensor x, Tensor residual, Tensor weight, Tensor bias, "
      "Tensor? mask, float scale, float eps) -> (Tensor, Tensor, Tensor)");
  // returns (grad_x (..., D), or (0,) when mask is None: then grad_x == grad_residual,
  // grad_residual (..., D), grad_weight (D,), grad_bias (D,)) in the input dtypes.
  m.def(
      "dropout_add_layer_norm_backward(Tensor grad_out, Tensor x, Tensor residual, "
      "Tensor weight, Tensor? mask, Tensor mean, Tensor rstd, float scale) "
      "-> (Tensor, Tensor, Tensor, Tensor)");
}
