// GAT's neighbourhood attention (Velickovic et al. 2018, eq. 1-4; the contracts of
// triton_attention.py). Forward: one thread per output element (destination i, head h, column c)
// walks i's edges once with an online softmax (Milakov and Gimelshein 2018): a running maximum m, a
// running sum l of exp(e - m) and a running weighted sum acc, both rescaled by exp(m_old - m_new) when
// an edge raises the maximum. No attention weight is stored; the column-0 thread saves
// lse = m + log l. Backward: one thread per (destination, head) recomputes alpha = exp(e - lse) / sum
// (the division cancels lse's rounding), then dz = alpha (dot - delta) LeakyReLU'(z) and their sum.
// Arithmetic is in fp32; a node without edges gets 0.
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gnn_kernels.h"

__device__ __forceinline__ float leaky_relu(float z, float negative_slope) {
  return z > 0.0f ? z : z * negative_slope;
}

template <typename scalar_t, typename index_t>
__global__ void gat_forward_kernel(const index_t* __restrict__ rowptr, const index_t* __restrict__ col,
                                   const scalar_t* __restrict__ h, const scalar_t* __restrict__ a_src,
                                   const scalar_t* __restrict__ a_dst, scalar_t* __restrict__ out,
                                   float* __restrict__ lse, int64_t N, int64_t H, int64_t C,
                                   float negative_slope) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // element (i, h, c)
  if (t >= N * H * C) return;
  const int64_t i = t / (H * C), head = t / C % H, c = t % C;
  const float s_dst = static_cast<float>(a_dst[i * H + head]);
  const int64_t end = rowptr[i + 1];
  float m = -INFINITY, l = 0.0f, acc = 0.0f;
  for (int64_t p = rowptr[i]; p < end; ++p) {
    const int64_t j = col[p];
    const float e = leaky_relu(s_dst + static_cast<float>(a_src[j * H + head]), negative_slope);
    const float v = static_cast<float>(h[(j * H + head) * C + c]);
    if (e > m) {  // a new maximum: rescale what was summed so far by exp(m_old - m_new)
      const float scale = expf(m - e);  // 0 at the first edge (m = -inf)
      l = l * scale + 1.0f;
      acc = acc * scale + v;
      m = e;
    } else {
      const float w = expf(e - m);
      l += w;
      acc += w * v;
    }
  }
  out[t] = static_cast<scalar_t>(l > 0.0f ? acc / l : 0.0f);
  if (c == 0) lse[i * H + head] = l > 0.0f ? m + logf(l) : 0.0f;
}

template <typename scalar_t, typename index_t>
__global__ void gat_backward_kernel(const index_t* __restrict__ rowptr, const index_t* __restrict__ col,
                                    const scalar_t* __restrict__ a_src, const scalar_t* __restrict__ a_dst,
                                    const float* __restrict__ lse, const float* __restrict__ dot,
                                    float* __restrict__ alpha, float* __restrict__ dz,
                                    float* __restrict__ grad_dst, int64_t N, int64_t H,
                                    float negative_slope) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (i, head)
  if (t >= N * H) return;
  const int64_t i = t / H, head = t % H;
  const float s_dst = static_cast<float>(a_dst[t]), log_sum = lse[t];
  const int64_t start = rowptr[i], end = rowptr[i + 1];
  float total = 0.0f, weighted = 0.0f;  // pass 1: sum_j exp(e_ij - lse_i) (about 1), and with dot_ij
  for (int64_t p = start; p < end; ++p) {
    const float z = s_dst + static_cast<float>(a_src[static_cast<int64_t>(col[p]) * H + head]);
    const float u = expf(leaky_relu(z, negative_slope) - log_sum);
    total += u;
    weighted += u * dot[p * H + head];
  }
  const float norm = total > 0.0f ? total : 1.0f;
  const float delta = weighted / norm;  // delta_i = sum_j alpha_ij dot_ij = <g_i, out_i>
  float grad = 0.0f;
  for (int64_t p = start; p < end; ++p) {  // pass 2: alpha and dz = alpha (dot - delta) LeakyReLU'(z)
    const float z = s_dst + static_cast<float>(a_src[static_cast<int64_t>(col[p]) * H + head]);
    const float a = expf(leaky_relu(z, negative_slope) - log_sum) / norm;
    const float de = a * (dot[p * H + head] - delta);
    const float d = z > 0.0f ? de : de * negative_slope;  // torch's LeakyReLU': slope where z <= 0
    alpha[p * H + head] = a;
    dz[p * H + head] = d;
    grad += d;
  }
  grad_dst[t] = grad;
}

template <typename scalar_t, typename index_t>
void launch_gat_forward(const index_t* rowptr, const index_t* col, const scalar_t* h,
                        const scalar_t* a_src, const scalar_t* a_dst, scalar_t* out, float* lse,
                        int64_t N, int64_t H, int64_t C, float negative_slope, cudaStream_t stream) {
  const int64_t blocks = (N * H * C + kGraphThreads - 1) / kGraphThreads;
  if (blocks == 0) return;
  gat_forward_kernel<scalar_t, index_t><<<blocks, kGraphThreads, 0, stream>>>(
      rowptr, col, h, a_src, a_dst, out, lse, N, H, C, negative_slope);
}

template <typename scalar_t, typename index_t>
void launch_gat_backward(const index_t* rowptr, const index_t* col, const scalar_t* a_src,
                         const scalar_t* a_dst, const float* lse, const float* dot, float* alpha,
                         float* dz, float* grad_dst, int64_t N, int64_t H, float negative_slope,
                         cudaStream_t stream) {
  const int64_t blocks = (N * H + kGraphThreads - 1) / kGraphThreads;
  if (blocks == 0) return;
  gat_backward_kernel<scalar_t, index_t><<<blocks, kGraphThreads, 0, stream>>>(
      rowptr, col, a_src, a_dst, lse, dot, alpha, dz, grad_dst, N, H, negative_slope);
}

#define INSTANTIATE(scalar_t, index_t)                                                              \
  template void launch_gat_forward<scalar_t, index_t>(const index_t*, const index_t*,               \
                                                      const scalar_t*, const scalar_t*,             \
                                                      const scalar_t*, scalar_t*, float*, int64_t,  \
                                                      int64_t, int64_t, float, cudaStream_t);       \
  template void launch_gat_backward<scalar_t, index_t>(const index_t*, const index_t*,              \
                                                       const scalar_t*, const scalar_t*,            \
                                                       const float*, const float*, float*, float*,  \
                                                       float*, int64_t, int64_t, float, cudaStream_t);

INSTANTIATE(float, int32_t)
INSTANTIATE(float, int64_t)
INSTANTIATE(__half, int32_t)
INSTANTIATE(__half, int64_t)
INSTANTIATE(__nv_bfloat16, int32_t)
INSTANTIATE(__nv_bfloat16, int64_t)
