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
// Instruction sets: the row loops (dropout_add_layer_norm_rows.h) are compiled for baseline
// x86-64 (SSE2), AVX2+FMA and AVX-512, and each op call runs the best build the CPU has, chosen
// once per call by select_isa (cpu_isa.h, shared with crop_views) and capped by
// ATEN_CPU_CAPABILITY (default / avx2), so the tests run every build on one machine. The
// builds differ only in rounding: the FMA builds contract a*b+c into one rounding (GCC's
// -ffp-contract=fast), the baseline has no FMA; summation order is the same in every build.
// Each build is kept only while it is faster than the one below it on the decoder's rows
// (per-build timings: BENCHMARKS.md, dropout_add_layer_norm).
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
#include <vector>

#include "cpu_isa.h"
#include "dropout_add_layer_norm_rows.h"

namespace lcnet_fast {
namespace {

using torch::headeronly::ScalarType;
using torch::stable::Tensor;
using Half = torch::headeronly::Half;
using BFloat16 = torch::headeronly::BFloat16;

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
// op lookup by name on every call, a cost worth skipping at small D for inputs that are
// nearly always contiguous already.
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
