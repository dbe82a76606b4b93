// Argument checks for lcnet_fast::crop_views shared by the CPU and CUDA kernels.
// They repeat the Python wrapper's checks so that a direct torch.ops call can
// never read or write out of bounds.
#pragma once

#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

namespace lcnet_fast {

inline int64_t crop_views_num_views(int64_t level) {
  return level == 1 ? 1 : level * level + 1;
}

inline void check_crop_views_args(
    const torch::stable::Tensor& images,
    int64_t level,
    int64_t size,
    const torch::stable::Tensor& mean,
    const torch::stable::Tensor& std_,
    torch::headeronly::ScalarType out_dtype) {
  using torch::headeronly::ScalarType;
  STD_TORCH_CHECK(
      images.scalar_type() == ScalarType::Byte,
      "crop_views: images must be uint8 (decoded RGB), got dtype ",
      torch::headeronly::toString(images.scalar_type()));
  STD_TORCH_CHECK(
      images.dim() == 4,
      "crop_views: images must have shape (B, H, W, 3), got rank ",
      images.dim());
  STD_TORCH_CHECK(
      images.size(3) == 3,
      "crop_views: images last dim must be 3 (RGB), got ",
      images.size(3));
  STD_TORCH_CHECK(level >= 1, "crop_views: level must be >= 1, got ", level);
  STD_TORCH_CHECK(size >= 1, "crop_views: size must be >= 1, got ", size);
  STD_TORCH_CHECK(
      images.size(1) == images.size(2),
      "crop_views: images must be square, got H=",
      images.size(1),
      " W=",
      images.size(2));
  STD_TORCH_CHECK(
      images.size(1) == level * size,
      "crop_views: images H=W must equal level*size=",
      level * size,
      ", got ",
      images.size(1));
  STD_TORCH_CHECK(
      mean.scalar_type() == ScalarType::Float && mean.numel() == 3 &&
          mean.dim() == 1,
      "crop_views: mean must be a float32 tensor of shape (3,)");
  STD_TORCH_CHECK(
      std_.scalar_type() == ScalarType::Float && std_.numel() == 3 &&
          std_.dim() == 1,
      "crop_views: std must be a float32 tensor of shape (3,)");
  STD_TORCH_CHECK(
      out_dtype == ScalarType::Float || out_dtype == ScalarType::Half ||
          out_dtype == ScalarType::BFloat16,
      "crop_views: out_dtype must be float32, float16 or bfloat16, got ",
      torch::headeronly::toString(out_dtype));
}

} // namespace lcnet_fast
