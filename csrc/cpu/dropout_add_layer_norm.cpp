// CPU kernels for lcnet_fast::dropout_add_layer_norm and its backward.
//
//   h = x * keep * scale + residual        (keep: the 0/1 dropout mask, scale = 1/(1-p))
//   y = (h - mean(h)) * rstd * weight + bias,   rstd = 1/sqrt(var(h) + eps), over the last dim
//
// Design trade-off: one work item = one row of D elements. The row's h is built once in
// fp32 in a small per-task scratch buffer (D floats, stays in L1/L2 for the decoder's
// D = 768), so the forward reads x, residual and the 1-byte mask exactly once and writes y
// once, plus one fp32 mean and rstd per row; the mean/variance use two passes over that
// buffer (no E[h^2]-E[h]^2 cancellation). Backward recomputes h from x, residual and the
// mask instead of saving it: that costs re-reading two inputs (autograd keeps them alive
// anyway) and saves a rows x D write in the forward and the memory to hold it.
// The dropout mask is not generated here: the Python wrapper draws it with torch's RNG
// (on the caller's generator), so every backend sees the same mask and is comparable to
// the reference element for element, at the price of one extra read of a 1-byte mask.
// weight/bias gradients: rows are cut into at most 64 fixed blocks (the cut depends only
// on the shape, not on the thread count, so results are deterministic); each block sums
// its rows into its own fp32 partial row, and a final pass adds the partials in block
// order. Inputs are fp32, fp16 or bf16 (weight/bias: the input dtype or fp32); all
// arithmetic is fp32 (fp16/bf16 rows are converted into fp32 scratch). Rows run on torch's
// intra-op pool (torch::stable::parallel_for).
// Instruction sets: the row loops (forward_rows, backward_blocks, with the row kernels and
// the fp16/bf16 conversions inlined into them) are compiled for baseline x86-64 (SSE2),
// AVX2+FMA and AVX-512, and each op call runs the best build the CPU has, chosen once per
// call by select_isa (cpu_isa.h, shared with crop_views) and capped by ATEN_CPU_CAPABILITY
// (default / avx2), so the tests run every build on one machine. The builds differ only in
// rounding: the FMA builds contract a*b+c into one rounding (GCC's -ffp-contract=fast), the
// baseline has no FMA; summation order (kLanes accumulators, pairwise tree, fixed blocks) is
// the same in every build. The AVX-512 build earns its place: rows 800, one thread, kernel
// alone, fwd / bwd: fp32 D 128 35 / 38 us vs AVX2 42 / 44 (baseline 54 / 69); fp32 D 768
// 146 / 246-264 vs 163-165 / 245-270; bf16 D 768 187 / 229-283 vs 238 / 349-376.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu_isa.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;
using Half = torch::headeronly::Half;
using BFloat16 = torch::headeronly::BFloat16;

constexpr int kLanes = 16; // independent accumulators: lets the compiler vectorise sums

const char* dtype_name(ScalarType t) {
  return torch::headeronly::toString(t);
}

bool is_float_type(ScalarType t) {
  return t == ScalarType::Float || t == ScalarType::Half || t == ScalarType::BFloat16;
}

std::vector<int64_t> shape_of(const Tensor& t) {
  std::vector<int64_t> s(static_cast<size_t>(t.dim()));
  for (int64_t i = 0; i < t.dim(); ++i) {
    s[static_cast<size_t>(i)] = t.size(i);
  }
  return s;
}

std::string shape_str(const Tensor& t) {
  std::string s = "(";
  for (int64_t i = 0; i < t.dim(); ++i) {
    s += std::to_string(t.size(i));
    if (i + 1 < t.dim() || t.dim() == 1) {
      s += ", ";
    }
  }
  while (!s.empty() && s.back() == ' ') {
    s.pop_back();
  }
  return s + ")";
}

bool same_shape(const Tensor& a, const Tensor& b) {
  return shape_of(a) == shape_of(b);
}

// Checks shared by forward and backward; returns D (the normalised size).
int64_t check_common(
    const char* fn,
    const Tensor& x,
    const Tensor& residual,
    const Tensor& weight,
    const std::optional<Tensor>& mask) {
  STD_TORCH_CHECK(
      x.is_cpu() && residual.is_cpu() && weight.is_cpu() && (!mask || mask->is_cpu()),
      fn, " (CPU kernel): all tensors must be CPU tensors");
  STD_TORCH_CHECK(
      is_float_type(x.scalar_type()), fn, ": x must be float32, float16 or bfloat16, got ",
      dtype_name(x.scalar_type()));
  STD_TORCH_CHECK(x.dim() >= 1, fn, ": x must have at least one dimension (..., D)");
  const int64_t d = x.size(x.dim() - 1);
  STD_TORCH_CHECK(d >= 1, fn, ": x last dim D must be >= 1, got shape ", shape_str(x));
  STD_TORCH_CHECK(
      residual.scalar_type() == x.scalar_type(), fn, ": residual dtype ",
      dtype_name(residual.scalar_type()), " must equal x dtype ", dtype_name(x.scalar_type()));
  STD_TORCH_CHECK(
      same_shape(residual, x), fn, ": residual shape ", shape_str(residual),
      " must equal x shape ", shape_str(x));
  STD_TORCH_CHECK(
      weight.dim() == 1 && weight.size(0) == d, fn, ": weight must have shape (", d,
      ",), got ", shape_str(weight));
  STD_TORCH_CHECK(
      weight.scalar_type() == x.scalar_type() || weight.scalar_type() == ScalarType::Float,
      fn, ": weight dtype must be x dtype or float32, got ", dtype_name(weight.scalar_type()));
  if (mask) {
    STD_TORCH_CHECK(
        mask->scalar_type() == ScalarType::Bool || mask->scalar_type() == ScalarType::Byte,
        fn, ": mask must be bool or uint8, got ", dtype_name(mask->scalar_type()));
    STD_TORCH_CHECK(
        same_shape(*mask, x), fn, ": mask shape ", shape_str(*mask), " must equal x shape ",
        shape_str(x));
  }
  return d;
}

template <typename T>
inline float ld(const T* p, int64_t i) {
  return static_cast<float>(p[i]);
}

template <typename T>
inline void st(T* p, int64_t i, float v) {
  p[i] = static_cast<T>(v);
}

// t as a contiguous tensor. torch::stable::contiguous goes through the dispatcher with an
// op lookup by name on every call; the inputs are nearly always contiguous already, and at
// D = 128 the five to nine such calls per op were a measurable part of a call.
Tensor as_contiguous(const Tensor& t) {
  return t.is_contiguous() ? t : torch::stable::contiguous(t);
}

// weight/bias (D,) of the input dtype or fp32 -> fp32 copy (D is small; done once per call)
std::vector<float> to_float_vec(const Tensor& t) {
  Tensor c = as_contiguous(t);
  const int64_t n = c.numel();
  std::vector<float> v(static_cast<size_t>(n));
  const void* p = c.data_ptr();
  switch (c.scalar_type()) {
    case ScalarType::Float:
      std::copy_n(static_cast<const float*>(p), n, v.begin());
      break;
    case ScalarType::Half:
      for (int64_t i = 0; i < n; ++i) v[i] = ld(static_cast<const Half*>(p), i);
      break;
    default:
      for (int64_t i = 0; i < n; ++i) v[i] = ld(static_cast<const BFloat16*>(p), i);
      break;
  }
  return v;
}

// The row kernels below work on fp32 arrays only; fp16/bf16 rows are converted to fp32
// scratch first (the row stays in L1). They are always inlined into the per-ISA row loops
// (forward_rows_*, backward_blocks_*), which compile them once per instruction set;
// reductions use kLanes independent accumulators, which the compiler can vectorise
// without -ffast-math.

// The sum of kLanes partial sums, added as a pairwise tree: log2(kLanes) dependent (vector)
// adds. Adding them one by one was a kLanes-long chain of dependent scalar adds per
// reduction, four per row: replacing it took 10-15 % off both kernels at D = 128.
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

template <typename T>
void forward_kernel(const ForwardJob<T>& job, int64_t rows) {
  const RowKernels<T> kernels = row_kernels<T>(select_isa());
  const int64_t d = job.d;
  const int64_t grain = std::max<int64_t>(1, 32768 / d);
  torch::stable::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(static_cast<size_t>(4 * d));
    kernels.forward(job, begin, end, buf.data());
  });
}

template <typename T>
void backward_kernel(const BackwardJob<T>& job, int64_t blocks) {
  const RowKernels<T> kernels = row_kernels<T>(select_isa());
  const int64_t d = job.d;
  torch::stable::parallel_for(0, blocks, 1, [&](int64_t bbeg, int64_t bend) {
    std::vector<float> buf(static_cast<size_t>(6 * d));
    kernels.backward(job, bbeg, bend, buf.data());
  });
}

template <typename W>
void reduce_partials(const float* partial, int64_t blocks, int64_t d, W* dw, W* db) {
  for (int64_t j = 0; j < d; ++j) {
    float sw = 0.0f, sb = 0.0f;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      sw += partial[blk * 2 * d + j];
      sb += partial[blk * 2 * d + d + j];
    }
    st(dw, j, sw);
    st(db, j, sb);
  }
}

std::vector<int64_t> row_shape(const Tensor& x) {
  std::vector<int64_t> s = shape_of(x);
  s.pop_back();
  return s;
}

// Returns (y (x.shape, x dtype), mean (x.shape[:-1], fp32), rstd (x.shape[:-1], fp32)).
std::tuple<Tensor, Tensor, Tensor> dropout_add_layer_norm_cpu(
    const Tensor& x,
    const Tensor& residual,
    const Tensor& weight,
    const Tensor& bias,
    const std::optional<Tensor>& mask,
    double scale,
    double eps) {
  const char* fn = "dropout_add_layer_norm";
  const int64_t d = check_common(fn, x, residual, weight, mask);
  STD_TORCH_CHECK(bias.is_cpu(), fn, " (CPU kernel): bias must be a CPU tensor");
  STD_TORCH_CHECK(
      bias.dim() == 1 && bias.size(0) == d, fn, ": bias must have shape (", d, ",), got ",
      shape_str(bias));
  STD_TORCH_CHECK(
      bias.scalar_type() == weight.scalar_type(), fn, ": bias dtype ",
      dtype_name(bias.scalar_type()), " must equal weight dtype ",
      dtype_name(weight.scalar_type()));
  STD_TORCH_CHECK(eps >= 0.0, fn, ": eps must be >= 0, got ", eps);
  STD_TORCH_CHECK(scale >= 0.0 && std::isfinite(scale), fn, ": scale must be finite, >= 0");
  const int64_t rows = x.numel() / d;
  const ScalarType dt = x.scalar_type();
  Tensor y = torch::stable::new_empty(x, shape_of(x), dt);
  std::vector<int64_t> rs = row_shape(x);
  Tensor mean = torch::stable::new_empty(x, rs, ScalarType::Float);
  Tensor rstd = torch::stable::new_empty(x, rs, ScalarType::Float);
  if (rows == 0) {
    return {y, mean, rstd};
  }
  Tensor xc = as_contiguous(x);
  Tensor rc = as_contiguous(residual);
  std::optional<Tensor> mc;
  if (mask) mc = as_contiguous(*mask);
  const uint8_t* keep = mc ? static_cast<const uint8_t*>(mc->data_ptr()) : nullptr;
  std::vector<float> w = to_float_vec(weight), b = to_float_vec(bias);
  float* mp = static_cast<float*>(mean.data_ptr());
  float* rp = static_cast<float*>(rstd.data_ptr());
  const float sc = static_cast<float>(scale), ep = static_cast<float>(eps);
#define LCNET_DALN_FWD(T)                                                                          \
  forward_kernel<T>({static_cast<const T*>(xc.data_ptr()), static_cast<const T*>(rc.data_ptr()),   \
                     keep, w.data(), b.data(), static_cast<T*>(y.data_ptr()), mp, rp, sc, ep, d},  \
                    rows)
  switch (dt) {
    case ScalarType::Float: LCNET_DALN_FWD(float); break;
    case ScalarType::Half: LCNET_DALN_FWD(Half); break;
    default: LCNET_DALN_FWD(BFloat16); break;
  }
#undef LCNET_DALN_FWD
  return {y, mean, rstd};
}

// Returns (grad_x, grad_residual, grad_weight, grad_bias); grad_x has shape (0,) when
// mask is None (then grad_x == grad_residual and the caller reuses it).
std::tuple<Tensor, Tensor, Tensor, Tensor> dropout_add_layer_norm_backward_cpu(
    const Tensor& grad_out,
    const Tensor& x,
    const Tensor& residual,
    const Tensor& weight,
    const std::optional<Tensor>& mask,
    const Tensor& mean,
    const Tensor& rstd,
    double scale) {
  const char* fn = "dropout_add_layer_norm_backward";
  const int64_t d = check_common(fn, x, residual, weight, mask);
  STD_TORCH_CHECK(
      grad_out.is_cpu() && mean.is_cpu() && rstd.is_cpu(), fn,
      " (CPU kernel): all tensors must be CPU tensors");
  STD_TORCH_CHECK(
      same_shape(grad_out, x) && grad_out.scalar_type() == x.scalar_type(), fn,
      ": grad_out must match x (shape ", shape_str(x), ", dtype ", dtype_name(x.scalar_type()),
      "), got shape ", shape_str(grad_out), " dtype ", dtype_name(grad_out.scalar_type()));
  const int64_t rows = x.numel() / d;
  for (const Tensor* t : {&mean, &rstd}) {
    STD_TORCH_CHECK(
        t->scalar_type() == ScalarType::Float && t->numel() == rows, fn,
        ": mean and rstd must be float32 with one value per row (", rows, "), got ",
        dtype_name(t->scalar_type()), " shape ", shape_str(*t));
  }
  const ScalarType dt = x.scalar_type();
  Tensor dres = torch::stable::new_empty(x, shape_of(x), dt);
  Tensor dx = mask ? torch::stable::new_empty(x, shape_of(x), dt)
                   : torch::stable::new_empty(x, std::vector<int64_t>{0}, dt);
  Tensor dw = torch::stable::new_empty(weight, std::vector<int64_t>{d});
  Tensor db = torch::stable::new_empty(weight, std::vector<int64_t>{d});
  const int64_t blocks =
      std::max<int64_t>(1, std::min<int64_t>({rows, 64, (rows * d + 16383) / 16384}));
  std::vector<float> partial(static_cast<size_t>(blocks * 2 * d), 0.0f);
  if (rows > 0) {
    Tensor gc = as_contiguous(grad_out);
    Tensor xc = as_contiguous(x);
    Tensor rc = as_contiguous(residual);
    Tensor mnc = as_contiguous(mean);
    Tensor rsc = as_contiguous(rstd);
    std::optional<Tensor> mc;
    if (mask) mc = as_contiguous(*mask);
    const uint8_t* keep = mc ? static_cast<const uint8_t*>(mc->data_ptr()) : nullptr;
    std::vector<float> w = to_float_vec(weight);
    const float* mp = static_cast<const float*>(mnc.data_ptr());
    const float* rp = static_cast<const float*>(rsc.data_ptr());
    const float sc = static_cast<float>(scale);
#define LCNET_DALN_BWD(T)                                                                          \
  backward_kernel<T>({static_cast<const T*>(gc.data_ptr()),                                        \
                      static_cast<const T*>(xc.data_ptr()),                                        \
                      static_cast<const T*>(rc.data_ptr()), keep, w.data(), mp, rp,                \
                      mask ? static_cast<T*>(dx.data_ptr()) : nullptr,                             \
                      static_cast<T*>(dres.data_ptr()), partial.data(), sc, rows,                  \
                      (rows + blocks - 1) / blocks, d},                                            \
                     blocks)
    switch (dt) {
      case ScalarType::Float: LCNET_DALN_BWD(float); break;
      case ScalarType::Half: LCNET_DALN_BWD(Half); break;
      default: LCNET_DALN_BWD(BFloat16); break;
    }
#undef LCNET_DALN_BWD
  }
  switch (weight.scalar_type()) {
    case ScalarType::Float:
      reduce_partials(partial.data(), blocks, d, static_cast<float*>(dw.data_ptr()),
                      static_cast<float*>(db.data_ptr()));
      break;
    case ScalarType::Half:
      reduce_partials(partial.data(), blocks, d, static_cast<Half*>(dw.data_ptr()),
                      static_cast<Half*>(db.data_ptr()));
      break;
    default:
      reduce_partials(partial.data(), blocks, d, static_cast<BFloat16*>(dw.data_ptr()),
                      static_cast<BFloat16*>(db.data_ptr()));
      break;
  }
  return {dx, dres, dw, db};
}

} // namespace

STABLE_TORCH_LIBRARY_IMPL(lcnet_fast, CPU, m) {
  m.impl("dropout_add_layer_norm", TORCH_BOX(&dropout_add_layer_norm_cpu));
  m.impl("dropout_add_layer_norm_backward", TORCH_BOX(&dropout_add_layer_norm_backward_cpu));
}

} // namespace lcnet_fast
