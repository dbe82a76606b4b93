// CPU kernel for lcnet_fast::crop_views.
//
// Design trade-off: one work item = one thumbnail row t of one image, i.e. the
// `level` image rows t*level .. t*level+level-1. Each item reads those rows once,
// writes them into their tiles through a 3x256 lookup table (bit-identical to
// (x/255 - mean)/std in fp32, no per-pixel division), and accumulates exact
// integer column sums for the thumbnail, divided once per thumbnail pixel. So the
// input is read exactly once and every output element is written exactly once.
// Work items are spread over torch's intra-op thread pool (torch::stable::parallel_for),
// so torch.set_num_threads applies. Writes are contiguous along x in both layouts;
// reads are strided by the input's own strides (any layout works, no copy).
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <array>
#include <cstdint>
#include <vector>

#include "../crop_views_checks.h"
#include "../crop_views_out.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;

template <typename T>
inline T cast_out(float v) {
  return static_cast<T>(v);
}

struct CropViewsGeometry {
  int64_t level, size, views;
  // input strides in elements: images (B, H, W, 3)
  int64_t in_sb, in_sy, in_sx, in_sc;
  // output strides in elements: out (B, V, 3, S, S) (logical order)
  int64_t out_sb, out_sv, out_sc, out_sy, out_sx;
};

// in:   uint8 (B, H, W, 3), strides g.in_*
// out:  T     (B, V, 3, S, S), strides g.out_*
// lut:  float (3, 256) normalised value of every byte per channel
// mean, std_: float (3,)
template <typename T>
void crop_views_row(
    const uint8_t* in,
    T* out,
    const float* lut,
    const float* mean,
    const float* std_,
    const CropViewsGeometry& g,
    int64_t b,
    int64_t t,
    std::vector<uint32_t>& colsum) { // colsum: (W, 3) scratch
  const int64_t L = g.level, S = g.size;
  const uint8_t* img = in + b * g.in_sb;
  T* out_b = out + b * g.out_sb;
  std::fill(colsum.begin(), colsum.end(), 0u);
  for (int64_t k = 0; k < L; ++k) {
    const int64_t y = t * L + k;
    const uint8_t* row = img + y * g.in_sy;
    const int64_t r = y / S, ty = y - r * S;
    for (int64_t cc = 0; cc < L; ++cc) {
      const int64_t v = 1 + r * L + cc;
      T* tile_row = out_b + v * g.out_sv + ty * g.out_sy;
      for (int64_t x = cc * S; x < (cc + 1) * S; ++x) {
        const uint8_t* px = row + x * g.in_sx;
        const int64_t ox = (x - cc * S) * g.out_sx;
        for (int64_t c = 0; c < 3; ++c) {
          const uint8_t p = px[c * g.in_sc];
          colsum[x * 3 + c] += p;
          if (L > 1) {
            tile_row[c * g.out_sc + ox] = cast_out<T>(lut[c * 256 + p]);
          }
        }
      }
    }
  }
  // thumbnail (view 0) row t: exact integer sum, one rounding for the mean
  const float denom = 255.0f * static_cast<float>(L * L);
  T* thumb_row = out_b + t * g.out_sy;
  for (int64_t tx = 0; tx < S; ++tx) {
    for (int64_t c = 0; c < 3; ++c) {
      uint32_t s = 0;
      for (int64_t j = 0; j < L; ++j) {
        s += colsum[(tx * L + j) * 3 + c];
      }
      const float val = static_cast<float>(s) / denom;
      thumb_row[c * g.out_sc + tx * g.out_sx] =
          cast_out<T>((val - mean[c]) / std_[c]);
    }
  }
}

template <typename T>
void crop_views_kernel(
    const uint8_t* in,
    T* out,
    const float* mean,
    const float* std_,
    const CropViewsGeometry& g,
    int64_t batch) {
  std::array<float, 3 * 256> lut;
  for (int64_t c = 0; c < 3; ++c) {
    for (int p = 0; p < 256; ++p) {
      lut[c * 256 + p] = (static_cast<float>(p) / 255.0f - mean[c]) / std_[c];
    }
  }
  const int64_t S = g.size, W = g.level * S;
  const int64_t items = batch * S;
  // about 16k input bytes per task keeps scheduling overhead negligible
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, g.level * W * 3));
  torch::stable::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> colsum(static_cast<size_t>(W * 3));
    for (int64_t i = begin; i < end; ++i) {
      crop_views_row<T>(in, out, lut.data(), mean, std_, g, i / S, i % S, colsum);
    }
  });
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
  CropViewsGeometry g{
      level, size, views,
      images.stride(0), images.stride(1), images.stride(2), images.stride(3),
      out.stride(0), out.stride(1), out.stride(2), out.stride(3), out.stride(4)};
  const uint8_t* in = static_cast<const uint8_t*>(images.data_ptr());
  void* o = out.data_ptr();
  switch (out_dtype) {
    case ScalarType::Float:
      crop_views_kernel<float>(in, static_cast<float*>(o), mean_p, std_p, g, batch);
      break;
    case ScalarType::Half:
      crop_views_kernel<torch::headeronly::Half>(
          in, static_cast<torch::headeronly::Half*>(o), mean_p, std_p, g, batch);
      break;
    default:
      crop_views_kernel<torch::headeronly::BFloat16>(
          in, static_cast<torch::headeronly::BFloat16*>(o), mean_p, std_p, g, batch);
      break;
  }
  return out;
}

} // namespace

STABLE_TORCH_LIBRARY_IMPL(lcnet_fast, CPU, m) {
  m.impl("crop_views", TORCH_BOX(&crop_views_cpu));
}

} // namespace lcnet_fast
