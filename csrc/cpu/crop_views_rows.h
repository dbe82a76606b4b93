// Row loops of lcnet_fast::crop_views on CPU and their per-ISA builds (internal header of
// crop_views.cpp, which holds the design notes, the checks, the threading and the op
// registration).
//
// Everything here is compiled once per instruction set: the work-item loop crop_views_items,
// with every helper below always inlined into it, is instantiated by the per-ISA entry points
// (crop_views_items_baseline / _avx2 / _avx512; cpu_isa.h). Every build gives the same bits
// (tests/ops/test_crop_views.py checks this).
#pragma once

#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "cpu_isa.h"

namespace lcnet_fast {
// Internal linkage on purpose: this header is included by crop_views.cpp only, and with it
// GCC compiles the per-ISA loops exactly as it did when they sat in that file.
namespace {

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
// scalar code that only the AVX-512 build vectorises: the table is several times faster
// in the baseline and AVX2 builds and somewhat slower in the AVX-512 one, and one rule
// serves every build (BENCHMARKS.md, crop_views).
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

} // namespace
} // namespace lcnet_fast
