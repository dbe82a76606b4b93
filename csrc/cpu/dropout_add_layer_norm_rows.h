// Row kernels of lcnet_fast::dropout_add_layer_norm on CPU and their per-ISA builds (internal
// header of dropout_add_layer_norm.cpp, which holds the design notes, the checks, the threading
// and the op registration).
//
// Everything here is compiled once per instruction set: the row loops forward_rows and
// backward_blocks, with the row kernels and the fp16/bf16 conversions always inlined into
// them, are instantiated by the per-ISA entry points (*_baseline, *_avx2, *_avx512; cpu_isa.h)
// and row_kernels(isa) returns one build's pair. The builds differ only in rounding (FMA
// contraction in the AVX2 and AVX-512 builds); the summation order (kLanes accumulators, the
// pairwise tree of sum_lanes, fixed row blocks) is the same in every build.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu_isa.h"

namespace lcnet_fast {
// Internal linkage on purpose: this header is included by dropout_add_layer_norm.cpp only, and
// with it GCC compiles the per-ISA loops exactly as it did when they sat in that file (with
// vague linkage, in a named namespace, it lays them out differently).
namespace {

inline constexpr int kLanes = 16; // independent accumulators: lets the compiler vectorise sums

// The row kernels below work on fp32 arrays only; fp16/bf16 rows are converted to fp32
// scratch first (the row stays in L1). They are always inlined into the per-ISA row loops
// (forward_rows_*, backward_blocks_*), which compile them once per instruction set;
// reductions use kLanes independent accumulators, which the compiler can vectorise
// without -ffast-math.

// The sum of kLanes partial sums, added as a pairwise tree: log2(kLanes) dependent (vector)
// adds rather than a kLanes-long chain of dependent scalar adds (four reductions per row make
// that chain a visible part of a short row; BENCHMARKS.md, dropout_add_layer_norm).
LCNET_ALWAYS_INLINE float sum_lanes(float* acc) {
  static_assert(kLanes == 16, "sum_lanes is written for 16 lanes");
  for (int l = 0; l < 8; ++l) acc[l] += acc[l + 8];
  for (int l = 0; l < 4; ++l) acc[l] += acc[l + 4];
  return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// h = x * keep * scale + r  (keep == nullptr: h = x + r); h may not alias x or r
LCNET_ALWAYS_INLINE void build_h_row(
    const float* __restrict__ x, const float* __restrict__ r, const uint8_t* __restrict__ keep,
    float scale, float* __restrict__ h, int64_t d) {
  if (keep != nullptr) {
    for (int64_t j = 0; j < d; ++j) h[j] = x[j] * (static_cast<float>(keep[j]) * scale) + r[j];
  } else {
    for (int64_t j = 0; j < d; ++j) h[j] = x[j] + r[j];
  }
}

// y = (h - mean) * rstd * w + b; returns mean and rstd of h (two passes over h)
LCNET_ALWAYS_INLINE void norm_row(
    const float* __restrict__ h, const float* __restrict__ w, const float* __restrict__ b,
    float* __restrict__ y, int64_t d, float eps, float* mean_out, float* rstd_out) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += h[j + l];
  }
  float s = 0.0f;
  for (; j < d; ++j) s += h[j];
  s += sum_lanes(acc);
  const float inv_d = 1.0f / static_cast<float>(d);
  const float mu = s * inv_d;
  float acc2[kLanes] = {};
  for (j = 0; j + kLanes <= d; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float c = h[j + l] - mu;
      acc2[l] += c * c;
    }
  }
  float var = 0.0f;
  for (; j < d; ++j) var += (h[j] - mu) * (h[j] - mu);
  var += sum_lanes(acc2);
  const float rs = 1.0f / std::sqrt(var * inv_d + eps);
  for (j = 0; j < d; ++j) y[j] = (h[j] - mu) * rs * w[j] + b[j];
  *mean_out = mu;
  *rstd_out = rs;
}

// One row of the backward. h: the recomputed pre-norm row (overwritten with xhat).
// dres = (dy*w - xhat * mean(dy*w*xhat) - mean(dy*w)) * rstd;  dx = dres * keep * scale
// (dx == nullptr: not written). dw += dy * xhat, db += dy (this block's partial sums).
LCNET_ALWAYS_INLINE void backward_row(
    float* __restrict__ h, const float* __restrict__ dy, const float* __restrict__ w,
    const uint8_t* __restrict__ keep, float scale, float mu, float rs,
    float* __restrict__ dres, float* __restrict__ dx, float* __restrict__ dw,
    float* __restrict__ db, int64_t d) {
  float acc_a[kLanes] = {}, acc_c[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= d; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const int64_t k = j + l;
      const float xh = (h[k] - mu) * rs;
      const float g = dy[k] * w[k];
      h[k] = xh;
      dw[k] += dy[k] * xh;
      db[k] += dy[k];
      acc_a[l] += g * xh;
      acc_c[l] += g;
    }
  }
  float a = 0.0f, c = 0.0f;
  for (; j < d; ++j) {
    const float xh = (h[j] - mu) * rs;
    const float g = dy[j] * w[j];
    h[j] = xh;
    dw[j] += dy[j] * xh;
    db[j] += dy[j];
    a += g * xh;
    c += g;
  }
  a += sum_lanes(acc_a);
  c += sum_lanes(acc_c);
  const float inv_d = 1.0f / static_cast<float>(d);
  a *= inv_d;
  c *= inv_d;
  for (j = 0; j < d; ++j) dres[j] = (dy[j] * w[j] - h[j] * a - c) * rs;
  if (dx != nullptr) {
    for (j = 0; j < d; ++j) dx[j] = dres[j] * (static_cast<float>(keep[j]) * scale);
  }
}

// A T row as fp32: the row itself for float, else converted into `scratch`.
template <typename T>
LCNET_ALWAYS_INLINE const float* as_float(const T* src, float* scratch, int64_t d) {
  if constexpr (std::is_same_v<T, float>) {
    return src;
  } else {
    for (int64_t j = 0; j < d; ++j) scratch[j] = static_cast<float>(src[j]);
    return scratch;
  }
}

// fp32 destination for a T row: the row itself for float, else `scratch` (then store_row).
template <typename T>
LCNET_ALWAYS_INLINE float* out_float(T* dst, float* scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return dst;
  } else {
    return scratch;
  }
}

template <typename T>
LCNET_ALWAYS_INLINE void store_row(T* dst, const float* src, int64_t d) {
  if constexpr (!std::is_same_v<T, float>) {
    for (int64_t j = 0; j < d; ++j) dst[j] = static_cast<T>(src[j]);
  }
}

// Everything one forward call needs, shared read-only by all threads.
// x, residual: T (rows, D) contiguous;  keep: uint8 (rows, D) or nullptr
// w, b: float (D,);  y: T (rows, D);  mean, rstd: float (rows,)
template <typename T>
struct ForwardJob {
  const T* x;
  const T* res;
  const uint8_t* keep;
  const float* w;
  const float* b;
  T* y;
  float* mean;
  float* rstd;
  float scale, eps;
  int64_t d;
};

// Forward of rows [begin, end); h: 4 D floats of scratch.
template <typename T>
LCNET_ALWAYS_INLINE void forward_rows(
    const ForwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  const int64_t d = job.d;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t off = r * d;
    const float* xf = as_float(job.x + off, h + d, d);
    const float* rf = as_float(job.res + off, h + 2 * d, d);
    build_h_row(xf, rf, job.keep ? job.keep + off : nullptr, job.scale, h, d);
    float* yf = out_float(job.y + off, h + 3 * d);
    norm_row(h, job.w, job.b, yf, d, job.eps, job.mean + r, job.rstd + r);
    store_row(job.y + off, yf, d);
  }
}

// Everything one backward call needs.
// dy, x, residual: T (rows, D) contiguous;  keep: uint8 (rows, D) or nullptr
// w: float (D,);  mean, rstd: float (rows,)
// dx: T (rows, D) or nullptr (no mask: dx == dres);  dres: T (rows, D)
// partial: float (blocks, 2, D) per-block dweight (row 0) and dbias (row 1) sums
template <typename T>
struct BackwardJob {
  const T* dy;
  const T* x;
  const T* res;
  const uint8_t* keep;
  const float* w;
  const float* mean;
  const float* rstd;
  T* dx;
  T* dres;
  float* partial;
  float scale;
  int64_t rows, rows_per_block, d;
};

// Backward of blocks [bbeg, bend) of rows_per_block rows; h: 6 D floats of scratch.
template <typename T>
LCNET_ALWAYS_INLINE void backward_blocks(
    const BackwardJob<T>& job, int64_t bbeg, int64_t bend, float* h) {
  const int64_t d = job.d;
  for (int64_t blk = bbeg; blk < bend; ++blk) {
    float* dw = job.partial + blk * 2 * d;
    float* db = dw + d;
    std::fill(dw, dw + 2 * d, 0.0f);
    const int64_t r0 = blk * job.rows_per_block;
    const int64_t r1 = std::min(job.rows, r0 + job.rows_per_block);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t off = r * d;
      const uint8_t* kr = job.keep ? job.keep + off : nullptr;
      const float* xf = as_float(job.x + off, h + d, d);
      const float* rf = as_float(job.res + off, h + 2 * d, d);
      build_h_row(xf, rf, kr, job.scale, h, d);
      const float* dyf = as_float(job.dy + off, h + d, d); // x's scratch is free again
      float* dresf = out_float(job.dres + off, h + 3 * d);
      float* dxf = job.dx ? out_float(job.dx + off, h + 4 * d) : nullptr;
      backward_row(h, dyf, job.w, kr, job.scale, job.mean[r], job.rstd[r], dresf, dxf, dw, db,
                   d);
      store_row(job.dres + off, dresf, d);
      if (job.dx) store_row(job.dx + off, dxf, d);
    }
  }
}

// The per-ISA row loops: the same code, compiled for each instruction set.
template <typename T>
void forward_rows_baseline(const ForwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  forward_rows<T>(job, begin, end, h);
}

template <typename T>
void backward_blocks_baseline(const BackwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  backward_blocks<T>(job, begin, end, h);
}

#if LCNET_X86_ISA_BUILDS
template <typename T>
LCNET_TARGET_AVX2 void forward_rows_avx2(
    const ForwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  forward_rows<T>(job, begin, end, h);
}

template <typename T>
LCNET_TARGET_AVX2 void backward_blocks_avx2(
    const BackwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  backward_blocks<T>(job, begin, end, h);
}

template <typename T>
LCNET_TARGET_AVX512 void forward_rows_avx512(
    const ForwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  forward_rows<T>(job, begin, end, h);
}

template <typename T>
LCNET_TARGET_AVX512 void backward_blocks_avx512(
    const BackwardJob<T>& job, int64_t begin, int64_t end, float* h) {
  backward_blocks<T>(job, begin, end, h);
}
#endif

// One build's row loops, chosen once per op call.
template <typename T>
struct RowKernels {
  void (*forward)(const ForwardJob<T>&, int64_t, int64_t, float*);
  void (*backward)(const BackwardJob<T>&, int64_t, int64_t, float*);
};

template <typename T>
RowKernels<T> row_kernels(Isa isa) {
  switch (isa) {
#if LCNET_X86_ISA_BUILDS
    case Isa::kAvx512:
      return {forward_rows_avx512<T>, backward_blocks_avx512<T>};
    case Isa::kAvx2:
      return {forward_rows_avx2<T>, backward_blocks_avx2<T>};
#endif
    default:
      return {forward_rows_baseline<T>, backward_blocks_baseline<T>};
  }
}

} // namespace
} // namespace lcnet_fast
