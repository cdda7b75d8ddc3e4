// The CSR sparse-dense product and its per-edge row dot (the contracts of triton_spmm.py): GCN's
// propagation, and its gradients (grad_x is the product over the transposed graph, grad_weight the
// edge dot). One thread per output element: consecutive threads take consecutive columns of a row, so
// a warp reads a gathered source row in one coalesced sweep. Each thread adds its row's edges in CSR
// order: no atomics, the same sum on every run. Arithmetic is in fp32 whatever the storage type;
// offsets are int64, so N D and E D may pass 2^31.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gnn_kernels.h"

template <typename scalar_t, typename index_t>
__global__ void spmm_kernel(const index_t* __restrict__ rowptr, const index_t* __restrict__ col,
                            const scalar_t* __restrict__ x, const float* __restrict__ weight,
                            scalar_t* __restrict__ out, int64_t N, int64_t D, int64_t C, int64_t H) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // element (i, d)
  if (t >= N * D) return;
  const int64_t i = t / D, d = t % D, head = d / C;
  const int64_t end = rowptr[i + 1];
  float acc = 0.0f;  // an empty row sums to 0
  for (int64_t p = rowptr[i]; p < end; ++p) {
    const float w = weight ? weight[p * H + head] : 1.0f;
    acc += w * static_cast<float>(x[static_cast<int64_t>(col[p]) * D + d]);
  }
  out[t] = static_cast<scalar_t>(acc);  // rounded to nearest
}

template <typename scalar_t, typename index_t>
__global__ void edge_dot_kernel(const index_t* __restrict__ dst, const index_t* __restrict__ col,
                                const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                                float* __restrict__ out, int64_t E, int64_t H, int64_t C) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (edge p, head)
  if (t >= E * H) return;
  const int64_t p = t / H, head = t % H;
  const scalar_t* a_row = a + (static_cast<int64_t>(dst[p]) * H + head) * C;
  const scalar_t* b_row = b + (static_cast<int64_t>(col[p]) * H + head) * C;
  float dot = 0.0f;
  for (int64_t c = 0; c < C; ++c) dot += static_cast<float>(a_row[c]) * static_cast<float>(b_row[c]);
  out[t] = dot;
}

template <typename scalar_t, typename index_t>
void launch_spmm(const index_t* rowptr, const index_t* col, const scalar_t* x, const float* weight,
                 scalar_t* out, int64_t N, int64_t D, int64_t C, int64_t H, cudaStream_t stream) {
  const int64_t blocks = (N * D + kGraphThreads - 1) / kGraphThreads;
  if (blocks == 0) return;
  spmm_kernel<scalar_t, index_t><<<blocks, kGraphThreads, 0, stream>>>(rowptr, col, x, weight, out, N,
                                                                       D, C, H);
}

template <typename scalar_t, typename index_t>
void launch_edge_dot(const index_t* dst, const index_t* col, const scalar_t* a, const scalar_t* b,
                     float* out, int64_t E, int64_t H, int64_t C, cudaStream_t stream) {
  const int64_t blocks = (E * H + kGraphThreads - 1) / kGraphThreads;
  if (blocks == 0) return;
  edge_dot_kernel<scalar_t, index_t><<<blocks, kGraphThreads, 0, stream>>>(dst, col, a, b, out, E, H,
                                                                           C);
}

#define INSTANTIATE(scalar_t, index_t)                                                              \
  template void launch_spmm<scalar_t, index_t>(const index_t*, const index_t*, const scalar_t*,     \
                                               const float*, scalar_t*, int64_t, int64_t, int64_t,  \
                                               int64_t, cudaStream_t);                              \
  template void launch_edge_dot<scalar_t, index_t>(const index_t*, const index_t*, const scalar_t*, \
                                                   const scalar_t*, float*, int64_t, int64_t,       \
                                                   int64_t, cudaStream_t);

INSTANTIATE(float, int32_t)
INSTANTIATE(float, int64_t)
INSTANTIATE(__half, int32_t)
INSTANTIATE(__half, int64_t)
INSTANTIATE(__nv_bfloat16, int32_t)
INSTANTIATE(__nv_bfloat16, int64_t)
