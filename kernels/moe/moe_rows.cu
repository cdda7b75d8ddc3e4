// Row scatter, row gather-sum and row dot: the data movement of MoE dispatch and combine
// (the same contracts as triton_rows.py). One thread block per row; its threads stride over D.
// Arithmetic is in fp32 whatever the storage type.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "moe_kernels.h"

constexpr int kRowThreads = 128;

template <typename scalar_t>
__global__ void scatter_rows_kernel(const scalar_t* __restrict__ src, const int64_t* __restrict__ slot,
                                    const scalar_t* __restrict__ weight, scalar_t* __restrict__ out,
                                    int64_t k, int64_t D) {
  const int64_t a = blockIdx.x;  // assignment a = t k + j
  const int64_t row = slot[a];
  if (row < 0) return;  // dropped
  const float w = weight ? static_cast<float>(weight[a]) : 1.0f;
  const scalar_t* from = src + (a / k) * D;
  scalar_t* to = out + row * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
    to[d] = static_cast<scalar_t>(w * static_cast<float>(from[d]));
}

template <typename scalar_t>
__global__ void gather_rows_kernel(const scalar_t* __restrict__ src, const int64_t* __restrict__ slot,
                                   const scalar_t* __restrict__ weight, scalar_t* __restrict__ out,
                                   int64_t k, int64_t D) {
  const int64_t t = blockIdx.x;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t row = slot[t * k + j];
      if (row < 0) continue;
      const float w = weight ? static_cast<float>(weight[t * k + j]) : 1.0f;
      acc += w * static_cast<float>(src[row * D + d]);
    }
    out[t * D + d] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t>
__global__ void row_dot_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ src,
                               const int64_t* __restrict__ slot, scalar_t* __restrict__ out,
                               int64_t k, int64_t D) {
  __shared__ float partial[kRowThreads];
  const int64_t tj = blockIdx.x;  // assignment (t, j) = t k + j
  const int64_t row = slot[tj];
  float acc = 0.0f;
  if (row >= 0)
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x)
      acc += static_cast<float>(a[(tj / k) * D + d]) * static_cast<float>(src[row * D + d]);
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride /= 2) {  // tree reduction in shared memory
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[tj] = static_cast<scalar_t>(partial[0]);
}

template <typename scalar_t>
void launch_scatter_rows(const scalar_t* src, const int64_t* slot, const scalar_t* weight,
                         scalar_t* out, int64_t T, int64_t k, int64_t D, cudaStream_t stream) {
  if (T * k == 0 || D == 0) return;
  scatter_rows_kernel<scalar_t><<<T * k, kRowThreads, 0, stream>>>(src, slot, weight, out, k, D);
}

template <typename scalar_t>
void launch_gather_rows(const scalar_t* src, const int64_t* slot, const scalar_t* weight,
                        scalar_t* out, int64_t T, int64_t k, int64_t D, cudaStream_t stream) {
  if (T == 0 || D == 0) return;
  gather_rows_kernel<scalar_t><<<T, kRowThreads, 0, stream>>>(src, slot, weight, out, k, D);
}

template <typename scalar_t>
void launch_row_dot(const scalar_t* a, const scalar_t* src, const int64_t* slot, scalar_t* out,
                    int64_t T, int64_t k, int64_t D, cudaStream_t stream) {
  if (T * k == 0) return;
  row_dot_kernel<scalar_t><<<T * k, kRowThreads, 0, stream>>>(a, src, slot, out, k, D);
}

#define INSTANTIATE(scalar_t)                                                                   \
  template void launch_scatter_rows<scalar_t>(const scalar_t*, const int64_t*, const scalar_t*, \
                                              scalar_t*, int64_t, int64_t, int64_t, cudaStream_t); \
  template void launch_gather_rows<scalar_t>(const scalar_t*, const int64_t*, const scalar_t*,  \
                                             scalar_t*, int64_t, int64_t, int64_t, cudaStream_t); \
  template void launch_row_dot<scalar_t>(const scalar_t*, const scalar_t*, const int64_t*,      \
                                         scalar_t*, int64_t, int64_t, int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
