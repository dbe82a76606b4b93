// Torch-free interface of the CUDA crop_views kernel (see crop_views_kernel.cuh).
// (Named *_kernel.cu: torch.utils.cpp_extension maps <op>.cu and <op>.cpp to the same
// object file, so the kernel and its dispatch cannot share a stem.)
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// out_dtype codes for lcnet_fast_crop_views_cuda
enum { LCNET_CV_F32 = 0, LCNET_CV_F16 = 1, LCNET_CV_BF16 = 2 };

// images: uint8 (B, H=level*size, W=level*size, 3) with element strides in_s[4]
// out:    (B, V, 3, size, size) of out_dtype with element strides out_s[5]
// mean, std: float32 (3,) device pointers
// Returns the launch error (cudaSuccess when queued).
cudaError_t lcnet_fast_crop_views_cuda(
    const uint8_t* images,
    void* out,
    const float* mean,
    const float* std_,
    int64_t batch,
    int64_t level,
    int64_t size,
    const int64_t* in_s,
    const int64_t* out_s,
    int out_dtype,
    cudaStream_t stream);

#ifdef __cplusplus
}
#endif
