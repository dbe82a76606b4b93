// CPU kernel for lcnet_fast::crop_views.
//
// Design trade-off: one work item = one thumbnail row t of one image, i.e. the
// `level` image rows t*level .. t*level+level-1. Each item reads those rows once,
// writes them into their tiles and accumulates exact integer column sums for the
// thumbnail, so the input is read exactly once and every output element is written
// exactly once. Work items are spread over torch's intra-op thread pool
// (torch::stable::parallel_for), so torch.set_num_threads applies.
//
// Values are computed, not looked up: (p / 255 - mean[c]) / std[c] in fp32 is the
// reference's own arithmetic (bit-identical), and it vectorises, while a 256-entry
// lookup table is a gather that does not (fp16 tiles are the exception: TableValues in
// crop_views_rows.h). For planar output the RGB triples are first split into channel
// arrays (store_planar), so that every value loop reads with unit stride: a stride-3 read
// inside the value loop does not vectorise well. Timings: BENCHMARKS.md, crop_views.
//
// The hot loops (crop_views_rows.h) are plain C++ that the compiler auto-vectorises. They
// are compiled three times: for the x86-64 baseline (SSE2), AVX2 and AVX-512 (GCC/Clang
// target attributes), and the best one the CPU supports is picked at run time (select_isa,
// cpu_isa.h), so the wheel still runs on any x86-64 machine; other architectures get
// one build.
//
// Inputs with any strides work: a row whose pixels are not packed RGB (x stride 3,
// channel stride 1) is first copied into a packed scratch row.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../crop_views_checks.h"
#include "../crop_views_out.h"
#include "cpu_isa.h"
#include "crop_views_rows.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;

template <typename T>
void run_crop_views(const CropViewsJob<T>& job, int64_t batch) {
  const Isa isa = select_isa();
  const int64_t S = job.size, W = job.level * S;
  const int64_t items = batch * S;
  // about 16k input bytes per task keeps scheduling overhead negligible
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, job.level * W * 3));
  torch::stable::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    CropViewsScratch scratch(W, S);
    switch (isa) {
#if LCNET_X86_ISA_BUILDS
      case Isa::kAvx512:
        crop_views_items_avx512<T>(job, begin, end, scratch);
        break;
      case Isa::kAvx2:
        crop_views_items_avx2<T>(job, begin, end, scratch);
        break;
#endif
      default:
        crop_views_items_baseline<T>(job, begin, end, scratch);
        break;
    }
  });
}

template <typename T>
void crop_views_typed(
    const torch::stable::Tensor& images,
    torch::stable::Tensor& out,
    int64_t level,
    int64_t size,
    const float* mean,
    const float* std_,
    bool channels_last) {
  CropViewsJob<T> job{
      static_cast<const uint8_t*>(images.data_ptr()),
      static_cast<T*>(out.data_ptr()),
      level, size,
      images.stride(0), images.stride(1), images.stride(2), images.stride(3),
      out.stride(0), out.stride(1), out.stride(2), out.stride(3),
      channels_last,
      {mean[0], mean[1], mean[2]},
      {std_[0], std_[1], std_[2]},
      nullptr};
  std::vector<T> table;
  if constexpr (kTileTable<T>) {
    table.resize(3 * 256);
    const ComputedValues<T> value = computed_values(job, 255.0f);
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 256; ++p) {
        table[c * 256 + p] = value(c, static_cast<float>(p));
      }
    }
    job.table = table.data();
  }
  run_crop_views<T>(job, images.size(0));
}

torch::stable::Tensor crop_views_cpu(
    const torch::stable::Tensor& images,
    int64_t level,
    int64_t size,
    const torch::stable::Tensor& mean,
    const torch::stable::Tensor& std_,
    ScalarType out_dtype,
    bool channels_last) {
  check_crop_views_args(images, level, size, mean, std_, out_dtype);
  STD_TORCH_CHECK(
      images.is_cpu() && mean.is_cpu() && std_.is_cpu(),
      "crop_views (CPU kernel): images, mean and std must be CPU tensors");
  // thumbnail block sums (up to 255 * level^2) are int32
  STD_TORCH_CHECK(
      level <= 2901,
      "crop_views (CPU kernel): supports level <= 2901 (thumbnail block sums of up to "
      "255 * level^2 are int32), got level=", level);
  torch::stable::Tensor mean_c = torch::stable::contiguous(mean);
  torch::stable::Tensor std_c = torch::stable::contiguous(std_);
  const float* mean_p = static_cast<const float*>(mean_c.data_ptr());
  const float* std_p = static_cast<const float*>(std_c.data_ptr());
  for (int c = 0; c < 3; ++c) {
    STD_TORCH_CHECK(std_p[c] != 0.0f, "crop_views: std[", c, "] must be non-zero");
  }
  const int64_t batch = images.size(0);
  const int64_t views = crop_views_num_views(level);
  torch::stable::Tensor out =
      new_crop_views_output(images, batch, views, size, out_dtype, channels_last);
  if (out.numel() == 0) {
    return out;
  }
  // the store functions assume the two layouts new_crop_views_output makes
  STD_TORCH_CHECK(
      channels_last ? (out.stride(4) == 3 && out.stride(2) == 1) : out.stride(4) == 1,
      "crop_views (CPU kernel): internal error, unexpected output strides");
  switch (out_dtype) {
    case ScalarType::Float:
      crop_views_typed<float>(images, out, level, size, mean_p, std_p, channels_last);
      break;
    case ScalarType::Half:
      crop_views_typed<torch::headeronly::Half>(
          images, out, level, size, mean_p, std_p, channels_last);
      break;
    default:
      crop_views_typed<torch::headeronly::BFloat16>(
          images, out, level, size, mean_p, std_p, channels_last);
      break;
  }
  return out;
}

} // namespace

STABLE_TORCH_LIBRARY_IMPL(lcnet_fast, CPU, m) {
  m.impl("crop_views", TORCH_BOX(&crop_views_cpu));
}

} // namespace lcnet_fast
