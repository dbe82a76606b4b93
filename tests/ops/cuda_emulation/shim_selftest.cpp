// Self-test of cuda_shim.h: the emulator must turn barrier bugs into wrong results (or a
// reported error) deterministically, or the crop_views emulation proves little. Called from
// tests/ops/test_crop_views_cuda_emulated.py through ctypes.
#include "cuda_shim.h"

namespace {

uint32_t pairs[1024];

// The crop_views pattern in miniature: every thread stores a value, the first half of the
// threads each add two of them, and the block loops over `iterations` rounds reusing the
// shared array. barriers: bit 0 = the barrier after the stores, bit 1 = the one after the
// reads (guarding the next round's stores).
__global__ void pair_sums(uint32_t* out, int iterations, int barriers) {
  const unsigned n = blockDim.x;
  for (int it = 0; it < iterations; ++it) {
    pairs[threadIdx.x] = 1000u * (uint32_t)it + threadIdx.x;
    if (barriers & 1) __syncthreads();
    if (threadIdx.x < n / 2) {
      out[it * (n / 2) + threadIdx.x] = pairs[2 * threadIdx.x] + pairs[2 * threadIdx.x + 1];
    }
    if (barriers & 2) __syncthreads();
  }
}

__global__ void early_exit(int* out) {
  if (threadIdx.x == 0) return;  // thread 0 leaves; the others wait at a barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

}  // namespace

extern "C" {

// out: (iterations, threads / 2). Returns 0 or -1 (emulator error).
int shim_selftest_pair_sums(uint32_t* out, unsigned threads, int iterations, int barriers,
                            long long schedule) {
  if (threads > 1024) return -1;
  return cuda_emu::launch(dim3(1, 1, 1), threads, schedule, pairs, sizeof(pairs),
                          [&] { pair_sums(out, iterations, barriers); })
             ? 0
             : -1;
}

// Returns -1 with the divergence in crop_views_emulator_last_error() (same shim state).
int shim_selftest_early_exit(int* out, unsigned threads) {
  return cuda_emu::launch(dim3(1, 1, 1), threads, cuda_emu::kAscending, nullptr, 0,
                          [&] { early_exit(out); })
             ? 0
             : -1;
}

}  // extern "C"
