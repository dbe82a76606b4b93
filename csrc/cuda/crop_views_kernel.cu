// CUDA launcher for lcnet_fast::crop_views. Torch-free: compiles in seconds.
// The kernel, its design notes and the launch geometry are in crop_views_kernel.cuh
// (shared with the CPU emulator test, tests/ops/cuda_emulation).
#include "crop_views_kernel.cuh"

extern "C" cudaError_t lcnet_fast_crop_views_cuda(
    const uint8_t* images, void* out, const float* mean, const float* std_,
    int64_t batch, int64_t level, int64_t size, const int64_t* in_s,
    const int64_t* out_s, int out_dtype, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  CropViewsLaunch l;
  const cudaError_t err = crop_views_launch_config(batch, level, size, in_s, out_s, &l);
  if (err != cudaSuccess) return err;
  switch (out_dtype) {
    case LCNET_CV_F32:
      crop_views_kernel<float><<<l.grid, l.threads, l.shmem, stream>>>(
          images, (float*)out, mean, std_, l.g, l.P);
      break;
    case LCNET_CV_F16:
      crop_views_kernel<__half><<<l.grid, l.threads, l.shmem, stream>>>(
          images, (__half*)out, mean, std_, l.g, l.P);
      break;
    case LCNET_CV_BF16:
      crop_views_kernel<__nv_bfloat16><<<l.grid, l.threads, l.shmem, stream>>>(
          images, (__nv_bfloat16*)out, mean, std_, l.g, l.P);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
