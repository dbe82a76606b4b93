// Output allocation for lcnet_fast::crop_views, shared by the CPU and CUDA kernels.
// Uses only stable-ABI calls present since torch 2.10 (new_empty, transpose), so one
// source builds against torch 2.10 .. 2.14 headers.
#pragma once

#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include <array>

namespace lcnet_fast {

// Returns the logical (B, V, 3, size, size) output. With channels_last the storage
// is a contiguous (B, V, size, size, 3) buffer, so each view is channels-last.
inline torch::stable::Tensor new_crop_views_output(
    const torch::stable::Tensor& images,
    int64_t batch,
    int64_t views,
    int64_t size,
    torch::headeronly::ScalarType out_dtype,
    bool channels_last) {
  if (!channels_last) {
    std::array<int64_t, 5> shape{batch, views, 3, size, size};
    return torch::stable::new_empty(images, shape, out_dtype);
  }
  std::array<int64_t, 5> shape{batch, views, size, size, 3};
  torch::stable::Tensor buf = torch::stable::new_empty(images, shape, out_dtype);
  // (B, V, S, S, 3) -> (B, V, S, 3, S) -> (B, V, 3, S, S)
  return torch::stable::transpose(torch::stable::transpose(buf, 3, 4), 2, 3);
}

} // namespace lcnet_fast
