// Runs the real CUDA crop_views kernel source (csrc/cuda/crop_views_kernel.cuh) on the CPU,
// under the fiber-based emulation of cuda_shim.h. Built by
// tests/ops/test_crop_views_cuda_emulated.py with g++ into a shared library and called
// through ctypes on plain host pointers (no torch headers: builds in a few seconds).
#include "cuda_shim.h"

namespace {
// Backing storage for the kernel's `extern __shared__ uint32_t colsum[];`.
// Why this works: under g++ __shared__ expands to nothing, so the kernel declares
// `extern uint32_t colsum[];` at block scope. A block-scope extern declaration names the
// variable of that name in the innermost enclosing namespace, which for the kernel is the
// unnamed namespace of crop_views_kernel.cuh; all unnamed namespaces of one translation
// unit are the same namespace, so this definition, made before the header is included,
// is the array the kernel uses. (If the kernel renames it, this fails to link, loudly.)
// Blocks run one after another, so one array serves every block: Block::run poisons the
// launch's shared bytes before each block, and the half past the largest launch (threads
// <= 1024) is a guard region checked after the launch for out-of-bounds writes.
constexpr size_t kSharedWords = 1024 * 3;  // the most the geometry allows: uint32 (1024, 3)
uint32_t colsum[2 * kSharedWords];
}  // namespace

#include "crop_views_kernel.cuh"

namespace {
template <typename T>
bool run(const uint8_t* images, void* out, const float* mean, const float* std_,
         const CropViewsLaunch& l, long long schedule) {
  T* o = static_cast<T*>(out);
  return cuda_emu::launch(l.grid, (unsigned)l.threads, schedule, colsum, l.shmem,
                          [&] { crop_views_kernel<T>(images, o, mean, std_, l.g, l.P); });
}
}  // namespace

extern "C" {

// Result codes besides cudaError_t values: the emulator's own failures.
enum { EMU_BARRIER_DIVERGENCE = 10001, EMU_SHARED_OOB = 10002, EMU_SHARED_TOO_BIG = 10003 };

// The launch geometry the CUDA launcher would use:
// info = {P, threads, grid.x, grid.y, grid.z, shared bytes}. Returns a cudaError_t code.
int crop_views_emulator_geometry(int64_t batch, int64_t level, int64_t size, int64_t* info) {
  const int64_t strides[5] = {0, 0, 0, 0, 0};
  CropViewsLaunch l;
  const cudaError_t err = crop_views_launch_config(batch, level, size, strides, strides, &l);
  if (err != cudaSuccess) return (int)err;
  const int64_t v[6] = {l.P, l.threads, l.grid.x, l.grid.y, l.grid.z, (int64_t)l.shmem};
  for (int i = 0; i < 6; ++i) info[i] = v[i];
  return 0;
}

// Same arguments as lcnet_fast_crop_views_cuda (host pointers instead of device ones, no
// stream), plus grid_z (> 0: replaces the launch's grid.z, e.g. fewer than batch so that
// each block loops over several images) and schedule (cuda_emu::Schedule, or a shuffle
// seed). Returns 0, a cudaError_t code from the launch configuration, or an EMU_* code.
int crop_views_emulator_run(const uint8_t* images, void* out, const float* mean,
                            const float* std_, int64_t batch, int64_t level, int64_t size,
                            const int64_t* in_s, const int64_t* out_s, int out_dtype,
                            int64_t grid_z, long long schedule) {
  if (batch == 0) return 0;  // as the launcher
  CropViewsLaunch l;
  const cudaError_t err = crop_views_launch_config(batch, level, size, in_s, out_s, &l);
  if (err != cudaSuccess) return (int)err;
  if (grid_z > 0) l.grid.z = (unsigned)grid_z;
  if (l.shmem > kSharedWords * sizeof(uint32_t)) return EMU_SHARED_TOO_BIG;
  std::memset(colsum, 0xA5, sizeof(colsum));  // Block::run re-poisons [0, shmem) per block
  bool ok;
  switch (out_dtype) {
    case LCNET_CV_F32:
      ok = run<float>(images, out, mean, std_, l, schedule);
      break;
    case LCNET_CV_F16:
      ok = run<__half>(images, out, mean, std_, l, schedule);
      break;
    case LCNET_CV_BF16:
      ok = run<__nv_bfloat16>(images, out, mean, std_, l, schedule);
      break;
    default:
      return (int)cudaErrorInvalidValue;
  }
  if (!ok) return EMU_BARRIER_DIVERGENCE;
  // shared bytes past this launch's size (up to the guard) must be untouched
  const unsigned char* sh = reinterpret_cast<const unsigned char*>(colsum);
  for (size_t i = l.shmem; i < sizeof(colsum); ++i) {
    if (sh[i] != 0xA5) {
      cuda_emu::last_error() = "shared memory written past the launch's dynamic size, byte " +
                               std::to_string(i) + " of " + std::to_string(l.shmem);
      return EMU_SHARED_OOB;
    }
  }
  return 0;
}

const char* crop_views_emulator_last_error() { return cuda_emu::last_error().c_str(); }

}  // extern "C"
