// Minimal CUDA emulation for running device code on the CPU with a host compiler (g++).
//
// What it provides, and how:
//  * __global__, __device__, __host__, __forceinline__, __shared__, __restrict__, dim3,
//    uint3, cudaError_t, __half / __nv_bfloat16 and their host-callable conversions come
//    from the CUDA toolkit's own headers: compiled without __CUDACC__, crt/host_defines.h
//    defines the execution-space and __shared__ qualifiers as nothing. So the shim
//    includes <cuda_runtime.h>, <cuda_fp16.h> and <cuda_bf16.h> first, and the kernel's
//    own includes of them are no-ops afterwards.
//  * threadIdx, blockIdx, blockDim, gridDim: plain globals (external linkage, so the
//    compiler must reload them after every opaque call, i.e. after each barrier), set by
//    the scheduler before it resumes a thread. All emulated threads run on one OS thread.
//  * __syncthreads(): the threads of a block are cooperative fibers (ucontext). A barrier
//    switches back to the scheduler, which runs every live thread up to the barrier before
//    resuming any of them past it, in a chosen, deterministic order (ascending or
//    descending threadIdx, or a seeded shuffle per phase). A missing or misplaced barrier
//    then gives wrong results on every run of a given schedule, not only by luck as with
//    real threads. Barrier divergence (some threads finish or wait at a different number of
//    barriers than others) is reported as an error.
//  * `extern __shared__` arrays: the translation unit that includes the kernel defines the
//    backing array itself (see crop_views_emulator.cpp) and passes it to Block::run so
//    that the scheduler can poison it before each block.
//
// Not emulated: warps (no __shfl*, no __syncwarp, no warp-synchronous code), atomics, and
// any other intrinsic. Device code that uses them fails to compile here, on purpose.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <ucontext.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__CUDACC__)
#error "cuda_shim.h is for host compilers; nvcc provides the real thing"
#endif

// The built-in variables. Written only by cuda_emu::Block; read by device code. Inline
// variables: external linkage (never cached across a barrier) and one definition however
// many translation units include the shim.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace cuda_emu {

enum Schedule { kAscending = 0, kDescending = 1 };  // any other value: shuffle seed

// Error text of the last failed launch ("" when none).
inline std::string& last_error() {
  static std::string e;
  return e;
}

// The threads of one block as fibers. One instance per launch; run() once per block.
class Block {
 public:
  Block(unsigned threads, size_t stack_bytes = 64 * 1024)
      : n_(threads), stack_(round_up(stack_bytes)), ctx_(threads), state_(threads),
        barriers_(threads), order_(threads) {
    page_ = (size_t)sysconf(_SC_PAGESIZE);
    // one PROT_NONE guard page below each stack: an overflow crashes instead of corrupting
    const size_t per = stack_ + page_;
    map_bytes_ = per * n_;
    void* p = mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
      std::perror("cuda_emu: mmap");
      std::abort();
    }
    mem_ = static_cast<char*>(p);
    for (unsigned i = 0; i < n_; ++i) mprotect(mem_ + i * per, page_, PROT_NONE);
  }
  ~Block() { munmap(mem_, map_bytes_); }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // Runs `body` as every thread of block `block` (blockDim = (n, 1, 1)). Before the block,
  // `shared` (shared_bytes) is filled with 0xA5 bytes, so a read of shared memory that no
  // thread of this block wrote gives garbage. Returns false (and sets last_error()) on
  // barrier divergence.
  bool run(const std::function<void()>& body, dim3 block, long long schedule, void* shared,
           size_t shared_bytes) {
    body_ = &body;
    blockIdx = uint3{block.x, block.y, block.z};
    blockDim = dim3(n_, 1, 1);
    if (shared) std::memset(shared, 0xA5, shared_bytes);
    const size_t per = stack_ + page_;
    for (unsigned i = 0; i < n_; ++i) {
      getcontext(&ctx_[i]);
      ctx_[i].uc_stack.ss_sp = mem_ + i * per + page_;
      ctx_[i].uc_stack.ss_size = stack_;
      ctx_[i].uc_link = &sched_;
      makecontext(&ctx_[i], &Block::entry, 0);
      state_[i] = kReady;
      barriers_[i] = 0;
      order_[i] = i;
    }
    if (schedule == kDescending) {
      for (unsigned i = 0; i < n_; ++i) order_[i] = n_ - 1 - i;
    }
    uint64_t rng = (uint64_t)schedule * 0x9E3779B97F4A7C15ull + 1;
    Block* const outer = current_block();
    current_block() = this;
    bool ok = true;
    for (;;) {
      if (schedule != kAscending && schedule != kDescending) {
        for (unsigned i = n_; i > 1; --i) {  // Fisher-Yates, a fresh order every phase
          rng = rng * 6364136223846793005ull + 1442695040888963407ull;
          std::swap(order_[i - 1], order_[(rng >> 33) % i]);
        }
      }
      for (unsigned k = 0; k < n_; ++k) {
        const unsigned i = order_[k];
        if (state_[i] == kDone) continue;
        cur_ = i;
        threadIdx = uint3{i, 0, 0};
        state_[i] = kRunning;
        swapcontext(&sched_, &ctx_[i]);
      }
      unsigned done = 0;
      for (unsigned i = 0; i < n_; ++i) done += state_[i] == kDone;
      if (done == n_) break;
      // Every live thread now waits at a barrier; all must be at the same one, and none
      // may have finished (the waiting ones would hang on a GPU).
      for (unsigned i = 0; i < n_ && ok; ++i) {
        if (state_[i] == kDone || barriers_[i] != barriers_[order_[0]]) {
          char msg[200];
          std::snprintf(msg, sizeof msg,
                        "barrier divergence in block (%u, %u, %u): %u of %u threads "
                        "finished, thread %u is at barrier %u, thread %u at barrier %u",
                        block.x, block.y, block.z, done, n_, i, barriers_[i], order_[0],
                        barriers_[order_[0]]);
          last_error() = msg;
          ok = false;
        }
      }
      if (!ok) break;
    }
    // abandoned fibers (after an error) are simply dropped: their stacks are reused
    current_block() = outer;
    return ok;
  }

  // __syncthreads() of the running thread
  static void barrier() {
    Block* b = current_block();
    if (b == nullptr) {
      std::fprintf(stderr, "cuda_emu: __syncthreads() outside an emulated block\n");
      std::abort();
    }
    const unsigned i = b->cur_;
    b->barriers_[i] += 1;
    b->state_[i] = kWaiting;
    swapcontext(&b->ctx_[i], &b->sched_);
  }

 private:
  enum State { kReady, kRunning, kWaiting, kDone };

  static Block*& current_block() {
    static Block* b = nullptr;
    return b;
  }
  static void entry() {
    Block* b = current_block();
    (*b->body_)();
    b->state_[b->cur_] = kDone;  // returning resumes uc_link, the scheduler
  }
  static size_t round_up(size_t n) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
  }

  unsigned n_;
  size_t stack_, page_ = 4096, map_bytes_ = 0;
  char* mem_ = nullptr;
  ucontext_t sched_;
  std::vector<ucontext_t> ctx_;
  std::vector<State> state_;
  std::vector<unsigned> barriers_;
  std::vector<unsigned> order_;
  unsigned cur_ = 0;
  const std::function<void()>* body_ = nullptr;
};

// Runs a whole grid, blocks one after another in x, then y, then z order.
// `kernel` is called with no arguments as each thread (capture the kernel's arguments).
inline bool launch(dim3 grid, unsigned threads, long long schedule, void* shared,
                   size_t shared_bytes, const std::function<void()>& kernel) {
  last_error().clear();
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    last_error() = "invalid launch configuration";
    return false;
  }
  gridDim = grid;
  Block block(threads);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x)
        if (!block.run(kernel, dim3(x, y, z), schedule, shared, shared_bytes)) return false;
  return true;
}

}  // namespace cuda_emu

inline void __syncthreads() { cuda_emu::Block::barrier(); }
