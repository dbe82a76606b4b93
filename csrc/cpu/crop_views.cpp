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
// lookup table is a gather that does not. A standalone timing of the tile loop on
// the dev machine (one core, the tiles of B=8, level 3, size 64, fp32): table
// 207 us, computed 78 us with AVX-512, 138 us with AVX2. The RGB triples are first
// split into channel arrays (store_planar) because a stride-3 read inside the value
// loop made the SSE2 build 2.7x slower (1044 vs 382 us).
//
// The hot loops are plain C++ that the compiler auto-vectorises. They are compiled
// three times: for the x86-64 baseline (SSE2), AVX2 and AVX-512 (GCC/Clang target
// attributes), and the best one the CPU supports is picked at run time (select_isa,
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
#include <type_traits>
#include <vector>

#include "../crop_views_checks.h"
#include "../crop_views_out.h"
#include "cpu_isa.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;

// Pixels split into channel arrays per step of store_planar: a multiple of every
// vector width, small enough for the stack.
constexpr int64_t kChunk = 64;

// Everything one call needs, shared read-only by all threads.
template <typename T>
struct CropViewsJob {
  const uint8_t* in; // images (B, H, W, 3), strides in_* (elements)
  T* out; // (B, V, 3, S, S); out_sx is 1, or 3 with out_sc == 1 (channels_last)
  int64_t level, size;
  int64_t in_sb, in_sy, in_sx, in_sc;
  int64_t out_sb, out_sv, out_sc, out_sy;
  bool channels_last;
  float mean[3], std_[3];
  const T* table; // (3, 256) tile values when kTileTable<T>, else nullptr
};

// Output values of one channel-interleaved row of numerators: value(c, num) for
// channel c. A numerator is a pixel byte (tiles) or the integer sum of a thumbnail
// block; denom = 255 * pixels summed. Two ways to get the value:

// Computed: (num / denom - mean[c]) / std[c] in fp32, rounded once to T. For a
// byte (denom 255) these are the reference's IEEE operations in its order, hence
// bit-identical to it in fp32. There is no multiply, so FMA contraction (GCC's
// default -ffp-contract=fast; the AVX2 and AVX-512 builds have FMA) cannot change
// the value; torch's software float->half rounding multiplies only by powers of two
// (exact), so contracting those changes nothing either. tests/ops/test_crop_views.py checks
// every build's fp16/bf16 output against torch's rounding of its fp32 output.
template <typename T>
struct ComputedValues {
  float denom;
  float mean[3], std_[3];
  LCNET_ALWAYS_INLINE T operator()(int c, float num) const {
    return static_cast<T>((num / denom - mean[c]) / std_[c]);
  }
};

// Looked up: table (3, 256) holds the computed value of every byte, already
// rounded to T. Used for fp16 tiles in every build: torch's float->half rounding is
// scalar code that only the AVX-512 build vectorises. Whole call, one thread, B=8,
// level 3, size 64, planar: baseline and AVX2 builds 2.9 / 2.8 ms computed, 0.69 /
// 0.63 ms with the table; AVX-512 0.29 ms computed, 0.39 ms with the table.
template <typename T>
struct TableValues {
  const T* table;
  LCNET_ALWAYS_INLINE T operator()(int c, uint8_t num) const {
    return table[c * 256 + num];
  }
};

template <typename T>
constexpr bool kTileTable = std::is_same_v<T, torch::headeronly::Half>;

// Writes n pixels of one output row in planar layout: d_c[x] = value(c, num[3x + c]).
// num: (n, 3) interleaved numerators (uint8 pixels or int32 block sums).
// Each chunk is split into channel arrays first so that every value loop is
// unit-stride on both sides and vectorises.
template <typename T, typename N, typename Values>
LCNET_ALWAYS_INLINE void store_planar_chunk(
    const N* __restrict num,
    int64_t n,
    const Values value, // by value: a local copy the stores cannot alias
    T* __restrict d0,
    T* __restrict d1,
    T* __restrict d2) {
  N p0[kChunk], p1[kChunk], p2[kChunk];
  for (int64_t x = 0; x < n; ++x) {
    p0[x] = num[3 * x];
    p1[x] = num[3 * x + 1];
    p2[x] = num[3 * x + 2];
  }
  for (int64_t x = 0; x < n; ++x) {
    d0[x] = value(0, p0[x]);
  }
  for (int64_t x = 0; x < n; ++x) {
    d1[x] = value(1, p1[x]);
  }
  for (int64_t x = 0; x < n; ++x) {
    d2[x] = value(2, p2[x]);
  }
}

template <typename T, typename N, typename Values>
LCNET_ALWAYS_INLINE void store_planar(
    const N* num,
    int64_t n,
    const Values& value,
    T* d0,
    T* d1,
    T* d2) {
  int64_t x = 0;
  // full chunks with a compile-time trip count, then the remainder
  for (; x + kChunk <= n; x += kChunk) {
    store_planar_chunk<T, N, Values>(num + 3 * x, kChunk, value, d0 + x, d1 + x, d2 + x);
  }
  if (x < n) {
    store_planar_chunk<T, N, Values>(num + 3 * x, n - x, value, d0 + x, d1 + x, d2 + x);
  }
}

// Writes n pixels of one channels-last output row: d[3x + c] = value(c, num[3x + c]).
// Input and output are both interleaved, so no split is needed.
template <typename T, typename N, typename Values>
LCNET_ALWAYS_INLINE void store_interleaved(
    const N* __restrict num,
    int64_t n,
    const Values value,
    T* __restrict d) {
  for (int64_t x = 0; x < n; ++x) {
    d[3 * x] = value(0, num[3 * x]);
    d[3 * x + 1] = value(1, num[3 * x + 1]);
    d[3 * x + 2] = value(2, num[3 * x + 2]);
  }
}

// Writes n interleaved numerators as row `y` of view `v` of image `b`.
template <typename T, typename N, typename Values>
LCNET_ALWAYS_INLINE void store_row(
    const CropViewsJob<T>& job,
    const N* num,
    int64_t n,
    const Values& value,
    int64_t b,
    int64_t v,
    int64_t y) {
  T* row = job.out + b * job.out_sb + v * job.out_sv + y * job.out_sy;
  if (job.channels_last) {
    store_interleaved<T, N, Values>(num, n, value, row);
  } else {
    store_planar<T, N, Values>(num, n, value, row, row + job.out_sc, row + 2 * job.out_sc);
  }
}

template <typename T>
LCNET_ALWAYS_INLINE ComputedValues<T> computed_values(const CropViewsJob<T>& job, float denom) {
  return {denom, {job.mean[0], job.mean[1], job.mean[2]},
          {job.std_[0], job.std_[1], job.std_[2]}};
}

// Values for tile pixels (denom 255).
template <typename T>
LCNET_ALWAYS_INLINE auto tile_values(const CropViewsJob<T>& job) {
  if constexpr (kTileTable<T>) {
    return TableValues<T>{job.table};
  } else {
    return computed_values(job, 255.0f);
  }
}

// Image row y of image b as packed RGB (W, 3): the input itself when its pixels
// are packed, else a copy into `packed` (3 W bytes).
template <typename T>
LCNET_ALWAYS_INLINE const uint8_t* packed_row(
    const CropViewsJob<T>& job,
    int64_t b,
    int64_t y,
    uint8_t* packed) {
  const uint8_t* row = job.in + b * job.in_sb + y * job.in_sy;
  if (job.in_sx == 3 && job.in_sc == 1) {
    return row;
  }
  const int64_t w = job.level * job.size;
  for (int64_t x = 0; x < w; ++x) {
    for (int64_t c = 0; c < 3; ++c) {
      packed[3 * x + c] = row[x * job.in_sx + c * job.in_sc];
    }
  }
  return packed;
}

// colsum[i] (+)= row[i] for the n = 3 W interleaved bytes of one image row.
LCNET_ALWAYS_INLINE void accumulate_columns(
    const uint8_t* __restrict row,
    int64_t n,
    int32_t* __restrict colsum,
    bool first) {
  if (first) {
    for (int64_t i = 0; i < n; ++i) {
      colsum[i] = row[i];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      colsum[i] += row[i];
    }
  }
}

// blocksum (S, 3) = sums of `level` neighbouring pixels of colsum (W, 3): the exact
// integer sum of each level x level thumbnail block.
LCNET_ALWAYS_INLINE void block_sums(
    const int32_t* __restrict colsum,
    int64_t level,
    int64_t size,
    int32_t* __restrict blocksum) {
  for (int64_t tx = 0; tx < size; ++tx) {
    const int32_t* px = colsum + 3 * tx * level;
    int32_t s0 = 0, s1 = 0, s2 = 0;
    for (int64_t j = 0; j < level; ++j) {
      s0 += px[3 * j];
      s1 += px[3 * j + 1];
      s2 += px[3 * j + 2];
    }
    blocksum[3 * tx] = s0;
    blocksum[3 * tx + 1] = s1;
    blocksum[3 * tx + 2] = s2;
  }
}

// Per-thread scratch, allocated once per parallel_for chunk.
struct CropViewsScratch {
  std::vector<uint8_t> packed; // (W, 3) copy of a strided input row
  std::vector<int32_t> colsum; // (W, 3) column sums over the item's rows
  std::vector<int32_t> blocksum; // (S, 3) thumbnail block sums
  CropViewsScratch(int64_t w, int64_t s)
      : packed(static_cast<size_t>(3 * w)),
        colsum(static_cast<size_t>(3 * w)),
        blocksum(static_cast<size_t>(3 * s)) {}
};

// Work item: thumbnail row t of image b and the `level` image rows it covers.
template <typename T>
LCNET_ALWAYS_INLINE void crop_views_item(
    const CropViewsJob<T>& job,
    int64_t b,
    int64_t t,
    CropViewsScratch& scratch) {
  const int64_t L = job.level, S = job.size, W = L * S;
  if (L == 1) { // the thumbnail is the image itself
    const uint8_t* row = packed_row(job, b, t, scratch.packed.data());
    store_row(job, row, S, tile_values(job), b, 0, t);
    return;
  }
  int32_t* colsum = scratch.colsum.data();
  for (int64_t k = 0; k < L; ++k) {
    const int64_t y = t * L + k;
    const uint8_t* row = packed_row(job, b, y, scratch.packed.data());
    accumulate_columns(row, 3 * W, colsum, k == 0);
    const int64_t r = y / S, ty = y - r * S; // tile row r, row ty inside it
    for (int64_t cc = 0; cc < L; ++cc) {
      store_row(job, row + 3 * cc * S, S, tile_values(job), b, 1 + r * L + cc, ty);
    }
  }
  // thumbnail: exact integer block sum, one rounding for the mean (exact in fp32
  // while 255 * level^2 < 2^24, i.e. level <= 256)
  block_sums(colsum, L, S, scratch.blocksum.data());
  const float denom = 255.0f * static_cast<float>(L * L);
  store_row(job, scratch.blocksum.data(), S, computed_values(job, denom), b, 0, t);
}

template <typename T>
LCNET_ALWAYS_INLINE void crop_views_items(
    const CropViewsJob<T>& job,
    int64_t begin,
    int64_t end,
    CropViewsScratch& scratch) {
  for (int64_t i = begin; i < end; ++i) {
    crop_views_item<T>(job, i / job.size, i % job.size, scratch);
  }
}

// The per-ISA entry points: the same code, compiled for three instruction sets.
template <typename T>
void crop_views_items_baseline(
    const CropViewsJob<T>& job, int64_t begin, int64_t end, CropViewsScratch& s) {
  crop_views_items<T>(job, begin, end, s);
}

#if LCNET_X86_ISA_BUILDS
template <typename T>
LCNET_TARGET_AVX2 void crop_views_items_avx2(
    const CropViewsJob<T>& job, int64_t begin, int64_t end, CropViewsScratch& s) {
  crop_views_items<T>(job, begin, end, s);
}

template <typename T>
LCNET_TARGET_AVX512 void crop_views_items_avx512(
    const CropViewsJob<T>& job, int64_t begin, int64_t end, CropViewsScratch& s) {
  crop_views_items<T>(job, begin, end, s);
}
#endif

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
