// CUDA dispatch for lcnet_fast::crop_views: argument checks, output allocation,
// the current stream from torch's stable C shim, then the torch-free launcher.
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>

#include "../crop_views_checks.h"
#include "../crop_views_out.h"
#include "crop_views_kernel.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;

torch::stable::Tensor crop_views_cuda(
    const torch::stable::Tensor& images,
    int64_t level,
    int64_t size,
    const torch::stable::Tensor& mean,
    const torch::stable::Tensor& std_,
    ScalarType out_dtype,
    bool channels_last) {
  check_crop_views_args(images, level, size, mean, std_, out_dtype);
  STD_TORCH_CHECK(
      images.is_cuda() && mean.is_cuda() && std_.is_cuda(),
      "crop_views (CUDA kernel): images, mean and std must be CUDA tensors");
  const int32_t dev = images.get_device_index();
  STD_TORCH_CHECK(
      mean.get_device_index() == dev && std_.get_device_index() == dev,
      "crop_views: mean and std must be on the device of images (cuda:", dev, ")");
  STD_TORCH_CHECK(
      level <= 1024 && size <= 65535,
      "crop_views (CUDA kernel): supports level <= 1024 and size <= 65535, got level=",
      level, " size=", size);
  torch::stable::accelerator::DeviceGuard guard(dev);
  torch::stable::Tensor mean_c = torch::stable::contiguous(mean);
  torch::stable::Tensor std_c = torch::stable::contiguous(std_);
  const int64_t batch = images.size(0);
  torch::stable::Tensor out = new_crop_views_output(
      images, batch, crop_views_num_views(level), size, out_dtype, channels_last);
  if (out.numel() == 0) {
    return out;
  }
  int64_t in_s[4], out_s[5];
  for (int i = 0; i < 4; ++i) in_s[i] = images.stride(i);
  for (int i = 0; i < 5; ++i) out_s[i] = out.stride(i);
  const int code = out_dtype == ScalarType::Float ? LCNET_CV_F32
      : out_dtype == ScalarType::Half             ? LCNET_CV_F16
                                                  : LCNET_CV_BF16;
  void* stream = nullptr;
  STABLE_TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(dev, &stream));
  const cudaError_t err = lcnet_fast_crop_views_cuda(
      static_cast<const uint8_t*>(images.data_ptr()), out.data_ptr(),
      static_cast<const float*>(mean_c.data_ptr()),
      static_cast<const float*>(std_c.data_ptr()), batch, level, size, in_s, out_s,
      code, static_cast<cudaStream_t>(stream));
  STD_TORCH_CHECK(
      err == cudaSuccess, "crop_views (CUDA kernel) launch failed: ",
      cudaGetErrorString(err));
  return out;
}

} // namespace

STABLE_TORCH_LIBRARY_IMPL(lcnet_fast, CUDA, m) {
  m.impl("crop_views", TORCH_BOX(&crop_views_cuda));
}

} // namespace lcnet_fast
