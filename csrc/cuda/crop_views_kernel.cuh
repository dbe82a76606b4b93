// Device code and launch geometry of the CUDA kernel for lcnet_fast::crop_views.
// Included by crop_views_kernel.cu (nvcc) and, on CPU, by the emulator test
// (tests/ops/cuda_emulation: g++ with a CUDA-emulation shim), so both run this exact
// source. Keep it free of anything a host compiler cannot see: no <<<>>>, no intrinsics
// besides __syncthreads, no warp-level primitives (the emulator runs one thread at a time).
//
// Design trade-off: a block owns one thumbnail row t of one image (input rows
// t*L .. t*L+L-1) and a run of L*P image columns (P thumbnail pixels). Thread x
// walks down its column: it reads each of the L pixels once (3 adjacent bytes,
// so a warp reads 96 contiguous bytes), writes it straight into its tile (a warp
// writes 32 contiguous elements per channel, or 96 in channels-last), and keeps the
// exact integer column sum in registers. The L column sums of one thumbnail pixel
// are then added through shared memory by P threads. Every input byte is read
// once and every output element written once; the output (4x the input in fp32)
// dominates traffic, so coalesced writes matter more than anything else here.
// Values use IEEE division (no fast-math), matching torch's fp32 bit for bit on tiles.
#pragma once

#include "crop_views_kernel.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace {

template <typename T>
__device__ __forceinline__ T to_out(float v);
template <>
__device__ __forceinline__ float to_out<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half to_out<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 to_out<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

struct Geometry {
  int64_t batch, level, size;
  int64_t in_s[4];   // images (B, H, W, 3) element strides
  int64_t out_s[5];  // out (B, V, 3, S, S) element strides
};

// grid: (ceil(S / P), S, min(B, 65535)), block: L * P threads
// shared: uint32 (L * P, 3) column sums
template <typename T>
__global__ void crop_views_kernel(
    const uint8_t* __restrict__ images,  // (B, H, W, 3)
    T* __restrict__ out,                 // (B, V, 3, S, S)
    const float* __restrict__ mean,      // (3,)
    const float* __restrict__ std_,      // (3,)
    Geometry g,
    int P) {
  extern __shared__ uint32_t colsum[];
  const int64_t L = g.level, S = g.size;
  const int64_t t = blockIdx.y;                       // thumbnail row
  const int64_t x = (int64_t)blockIdx.x * L * P + threadIdx.x;  // image column
  const bool active = x < L * S;
  const float m[3] = {mean[0], mean[1], mean[2]};
  const float sd[3] = {std_[0], std_[1], std_[2]};
  const int64_t cc = x / S, tx = x - cc * S;          // tile column, column in tile
  for (int64_t b = blockIdx.z; b < g.batch; b += gridDim.z) {
    uint32_t sum[3] = {0u, 0u, 0u};
    if (active) {
      const uint8_t* col = images + b * g.in_s[0] + x * g.in_s[2];
      T* out_b = out + b * g.out_s[0];
      for (int64_t k = 0; k < L; ++k) {
        const int64_t y = t * L + k;
        const int64_t r = y / S, ty = y - r * S;
        T* o = out_b + (1 + r * L + cc) * g.out_s[1] + ty * g.out_s[3] + tx * g.out_s[4];
        for (int c = 0; c < 3; ++c) {
          const uint32_t p = col[y * g.in_s[1] + c * g.in_s[3]];
          sum[c] += p;
          if (L > 1) {
            o[c * g.out_s[2]] = to_out<T>(((float)p / 255.0f - m[c]) / sd[c]);
          }
        }
      }
    }
    for (int c = 0; c < 3; ++c) colsum[threadIdx.x * 3 + c] = sum[c];
    __syncthreads();
    const int64_t tp = (int64_t)blockIdx.x * P + threadIdx.x;  // thumbnail column
    if (threadIdx.x < P && tp < S) {
      const float denom = 255.0f * (float)(L * L);
      T* o = out + b * g.out_s[0] + t * g.out_s[3] + tp * g.out_s[4];
      for (int c = 0; c < 3; ++c) {
        uint32_t s = 0;
        for (int64_t j = 0; j < L; ++j) s += colsum[(threadIdx.x * L + j) * 3 + c];
        o[c * g.out_s[2]] = to_out<T>(((float)s / denom - m[c]) / sd[c]);
      }
    }
    __syncthreads();
  }
}

// Everything the host computes for one launch.
struct CropViewsLaunch {
  Geometry g;
  int P;         // thumbnail pixels per block
  int threads;   // L * P threads per block (x only)
  dim3 grid;     // (ceil(S / P), S, min(B, 65535))
  size_t shmem;  // dynamic shared memory bytes: uint32 (threads, 3)
};

// Fills `launch` for images of `batch` x (level*size)^2 and the given element strides.
// Returns cudaErrorInvalidValue for a geometry the kernel cannot launch. batch must be
// >= 1 (the launcher returns early for an empty batch).
__host__ inline cudaError_t crop_views_launch_config(
    int64_t batch, int64_t level, int64_t size, const int64_t* in_s,
    const int64_t* out_s, CropViewsLaunch* launch) {
  Geometry& g = launch->g;
  g.batch = batch;
  g.level = level;
  g.size = size;
  for (int i = 0; i < 4; ++i) g.in_s[i] = in_s[i];
  for (int i = 0; i < 5; ++i) g.out_s[i] = out_s[i];
  // P thumbnail pixels per block, L * P <= 256 threads (at least one pixel)
  int P = (int)(256 / level);
  if (P < 1) P = 1;
  if (P > size) P = (int)size;
  const int threads = (int)(level * P);
  if (threads > 1024 || size > 65535) return cudaErrorInvalidValue;
  launch->P = P;
  launch->threads = threads;
  launch->grid = dim3((unsigned)((size + P - 1) / P), (unsigned)size,
                      (unsigned)(batch < 65535 ? batch : 65535));
  launch->shmem = (size_t)threads * 3 * sizeof(uint32_t);
  return cudaSuccess;
}

}  // namespace
