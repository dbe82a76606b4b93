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
}
