// The ideal denoiser of a training set as a streaming softmax (Karras et al. 2022, eq. 2; the contracts
// of triton_ideal.py and course.diffusion.ideal.streaming_forward / streaming_backward), flash
// attention's loop in CUDA C++ with shared-memory tiles, in fp32 whatever the storage type.
//
// A thread block takes kIdealTile queries and kIdealTile output columns; its kIdealTile x 8 threads
// walk the M points kIdealTile at a time. Each step:
//   1. tile_logits: the [queries, points] tile of x_i . y_j, |y_j|^2 (and <g_i, y_j> in the backward),
//      over D in steps of kIdealTile through shared memory; thread (tx, ty) owns point tx of queries
//      ty + 8 r, r < kIdealRowsPerThread.
//   2. forward: one thread per query updates the running maximum m, the running sum l of
//      exp(logit - m) and the factor exp(m_old - m_new) that rescales what was summed so far; the tile
//      becomes the weights exp(logit - m).
//   3. every thread adds weights x points for its queries and its column of the block.
// The [N, M] weights never exist; m and l are saved apart (m + log l would cost the fp32 weights a
// relative error of eps |m|). The backward runs two sweeps: delta_i = sum_j p_ij <g_i, y_j> first, then
// sum_j p_ij (<g_i, y_j> - delta_i) y_j, both from the same products, so that one-hot weights give
// exactly 0. A row of NaN queries gives NaN (its maximum stays -inf: no -inf - -inf is formed).
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "diffusion_kernels.h"

constexpr int kIdealThreadsY = kIdealTile / kIdealRowsPerThread;
using Tile = float[kIdealTile][kIdealTile + 1];  // +1: a column of a tile is read without bank conflicts

// Loads rows [row0, row0 + kIdealTile) x columns [col0, col0 + kIdealTile) of a row-major [rows, D]
// array into tile, zeros past its end.
template <typename scalar_t>
__device__ __forceinline__ void load_tile(Tile& tile, const scalar_t* __restrict__ src, int64_t row0,
                                          int64_t rows, int64_t col0, int64_t D) {
  const int64_t col = col0 + threadIdx.x;
  for (int r = threadIdx.y; r < kIdealTile; r += kIdealThreadsY) {
    const int64_t row = row0 + r;
    tile[r][threadIdx.x] = row < rows && col < D ? static_cast<float>(src[row * D + col]) : 0.0f;
  }
}

// Step 1: logit[r] = (x . y - |y|^2 / 2) / sigma^2 of this thread's queries and point (-inf past M),
// and g_dot[r] = <g, y> if g is given. Ends past a barrier: the tiles may be overwritten.
template <typename scalar_t>
__device__ void tile_logits(const scalar_t* __restrict__ x, const scalar_t* __restrict__ g,
                            const scalar_t* __restrict__ y, const float* s2, Tile& x_tile, Tile& g_tile,
                            Tile& y_tile, int64_t n0, int64_t m0, int64_t N, int64_t M, int64_t D,
                            float* logit, float* g_dot) {
  float dot[kIdealRowsPerThread] = {};
  float norm = 0.0f;  // |y_j|^2 of this thread's point
  for (int r = 0; r < kIdealRowsPerThread; ++r) g_dot[r] = 0.0f;
  for (int64_t d0 = 0; d0 < D; d0 += kIdealTile) {
    load_tile(x_tile, x, n0, N, d0, D);
    load_tile(y_tile, y, m0, M, d0, D);
    if (g) load_tile(g_tile, g, n0, N, d0, D);
    __syncthreads();
    for (int k = 0; k < kIdealTile; ++k) {
      const float v = y_tile[threadIdx.x][k];
      norm += v * v;
      for (int r = 0; r < kIdealRowsPerThread; ++r) {
        dot[r] += x_tile[threadIdx.y + r * kIdealThreadsY][k] * v;
        if (g) g_dot[r] += g_tile[threadIdx.y + r * kIdealThreadsY][k] * v;
      }
    }
    __syncthreads();
  }
  const bool point = m0 + threadIdx.x < M;
  for (int r = 0; r < kIdealRowsPerThread; ++r)
    logit[r] = point ? (dot[r] - 0.5f * norm) / s2[threadIdx.y + r * kIdealThreadsY] : -INFINITY;
}

// Step 3: acc[r] (scaled by scale[query] first, if given) += sum_k weight[query][k] y[m0 + k, column].
// Starts and ends past a barrier.
template <typename scalar_t>
__device__ void add_weighted_points(const scalar_t* __restrict__ y, Tile& weight, Tile& y_tile,
                                    const float* scale, int64_t m0, int64_t M, int64_t col0, int64_t D,
                                    float* acc) {
  load_tile(y_tile, y, m0, M, col0, D);
  __syncthreads();
  for (int r = 0; r < kIdealRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kIdealThreadsY;
    float a = scale ? acc[r] * scale[q] : acc[r];
    for (int k = 0; k < kIdealTile; ++k) a += weight[q][k] * y_tile[k][threadIdx.x];
    acc[r] = a;
  }
  __syncthreads();
}

template <typename scalar_t>
__global__ void ideal_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                     const float* __restrict__ sigma, scalar_t* __restrict__ out,
                                     float* __restrict__ m_out, float* __restrict__ l_out, int64_t N,
                                     int64_t M, int64_t D) {
  __shared__ Tile x_tile;
  __shared__ Tile y_tile;
  __shared__ Tile p_tile;  // logits, then weights exp(logit - m) [query, point]
  __shared__ float s2[kIdealTile];     // sigma_i^2
  __shared__ float m[kIdealTile];      // running maximum of the logits
  __shared__ float l[kIdealTile];      // running sum of exp(logit - m)
  __shared__ float scale[kIdealTile];  // exp(m_old - m_new) of the last tile
  const int64_t n0 = blockIdx.x * static_cast<int64_t>(kIdealTile);
  const int64_t col0 = blockIdx.y * static_cast<int64_t>(kIdealTile);
  if (threadIdx.y == 0) {
    const int64_t i = n0 + threadIdx.x;
    const float s = i < N ? sigma[i] : 1.0f;
    s2[threadIdx.x] = s * s;
    m[threadIdx.x] = -INFINITY;
    l[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  float acc[kIdealRowsPerThread] = {};  // running sum of exp(logit - m) y[j, column]
  float logit[kIdealRowsPerThread], unused[kIdealRowsPerThread];
  for (int64_t m0 = 0; m0 < M; m0 += kIdealTile) {
    tile_logits<scalar_t>(x, nullptr, y, s2, x_tile, x_tile, y_tile, n0, m0, N, M, D, logit, unused);
    for (int r = 0; r < kIdealRowsPerThread; ++r)
      p_tile[threadIdx.y + r * kIdealThreadsY][threadIdx.x] = logit[r];
    __syncthreads();
    if (threadIdx.y == 0) {  // step 2, one thread per query
      const int q = threadIdx.x;
      float m_new = m[q];
      for (int k = 0; k < kIdealTile; ++k) m_new = fmaxf(m_new, p_tile[q][k]);  // -inf only for NaN logits
      const float shift = m_new == -INFINITY ? 0.0f : m_new;
      float sum = 0.0f;
      for (int k = 0; k < kIdealTile; ++k) {
        const float p = expf(p_tile[q][k] - shift);  // 0 past M
        p_tile[q][k] = p;
        sum += p;
      }
      scale[q] = expf(m[q] - shift);  // 0 on the first tile (m = -inf)
      l[q] = l[q] * scale[q] + sum;
      m[q] = m_new;
    }
    __syncthreads();
    add_weighted_points(y, p_tile, y_tile, scale, m0, M, col0, D, acc);
  }
  const int64_t col = col0 + threadIdx.x;
  for (int r = 0; r < kIdealRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kIdealThreadsY;
    const int64_t i = n0 + q;
    if (i < N && col < D) out[i * D + col] = static_cast<scalar_t>(acc[r] / l[q]);  // rounded to nearest
  }
  if (blockIdx.y == 0 && threadIdx.y == 0 && n0 + threadIdx.x < N) {
    m_out[n0 + threadIdx.x] = m[threadIdx.x];
    l_out[n0 + threadIdx.x] = l[threadIdx.x];
  }
}

template <typename scalar_t>
__global__ void ideal_backward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                      const float* __restrict__ sigma, const float* __restrict__ m_in,
                                      const float* __restrict__ l_in, const scalar_t* __restrict__ grad,
                                      scalar_t* __restrict__ grad_x, int64_t N, int64_t M, int64_t D) {
  __shared__ Tile x_tile;
  __shared__ Tile g_tile;
  __shared__ Tile y_tile;
  __shared__ Tile w_tile;  // p_ij (<g_i, y_j> - delta_i) [query, point]; first the parts of delta
  __shared__ float s2[kIdealTile];
  __shared__ float m[kIdealTile];
  __shared__ float l[kIdealTile];
  __shared__ float delta[kIdealTile];  // sum_j p_ij <g_i, y_j>
  const int64_t n0 = blockIdx.x * static_cast<int64_t>(kIdealTile);
  const int64_t col0 = blockIdx.y * static_cast<int64_t>(kIdealTile);
  if (threadIdx.y == 0) {
    const int64_t i = n0 + threadIdx.x;
    const float s = i < N ? sigma[i] : 1.0f;
    s2[threadIdx.x] = s * s;
    const float saved = i < N ? m_in[i] : 0.0f;
    m[threadIdx.x] = saved == -INFINITY ? 0.0f : saved;  // a row of NaN logits: NaN weights
    l[threadIdx.x] = i < N ? l_in[i] : 1.0f;
  }
  __syncthreads();
  float logit[kIdealRowsPerThread], g_dot[kIdealRowsPerThread], part[kIdealRowsPerThread] = {};
  for (int64_t m0 = 0; m0 < M; m0 += kIdealTile) {  // sweep 1: this thread's point's share of delta
    tile_logits(x, grad, y, s2, x_tile, g_tile, y_tile, n0, m0, N, M, D, logit, g_dot);
    for (int r = 0; r < kIdealRowsPerThread; ++r) {
      const int q = threadIdx.y + r * kIdealThreadsY;
      part[r] += expf(logit[r] - m[q]) / l[q] * g_dot[r];
    }
  }
  for (int r = 0; r < kIdealRowsPerThread; ++r)
    w_tile[threadIdx.y + r * kIdealThreadsY][threadIdx.x] = part[r];
  __syncthreads();
  if (threadIdx.y == 0) {
    float sum = 0.0f;
    for (int k = 0; k < kIdealTile; ++k) sum += w_tile[threadIdx.x][k];
    delta[threadIdx.x] = sum;  // sum_j p_ij <g_i, y_j>
  }
  __syncthreads();
  float acc[kIdealRowsPerThread] = {};
  for (int64_t m0 = 0; m0 < M; m0 += kIdealTile) {  // sweep 2
    tile_logits(x, grad, y, s2, x_tile, g_tile, y_tile, n0, m0, N, M, D, logit, g_dot);
    for (int r = 0; r < kIdealRowsPerThread; ++r) {
      const int q = threadIdx.y + r * kIdealThreadsY;
      w_tile[q][threadIdx.x] = expf(logit[r] - m[q]) / l[q] * (g_dot[r] - delta[q]);
    }
    add_weighted_points(y, w_tile, y_tile, nullptr, m0, M, col0, D, acc);
  }
  const int64_t col = col0 + threadIdx.x;
  for (int r = 0; r < kIdealRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kIdealThreadsY;
    const int64_t i = n0 + q;
    if (i < N && col < D) grad_x[i * D + col] = static_cast<scalar_t>(acc[r] / s2[q]);
  }
}

template <typename scalar_t>
void launch_ideal_forward(const scalar_t* x, const scalar_t* y, const float* sigma, scalar_t* out, float* m,
                          float* l, int64_t N, int64_t M, int64_t D, cudaStream_t stream) {
  if (N == 0 || D == 0) return;
  const dim3 grid((N + kIdealTile - 1) / kIdealTile, (D + kIdealTile - 1) / kIdealTile);
  const dim3 block(kIdealTile, kIdealThreadsY);
  ideal_forward_kernel<scalar_t><<<grid, block, 0, stream>>>(x, y, sigma, out, m, l, N, M, D);
}

template <typename scalar_t>
void launch_ideal_backward(const scalar_t* x, const scalar_t* y, const float* sigma, const float* m,
                           const float* l, const scalar_t* grad, scalar_t* grad_x, int64_t N, int64_t M,
                           int64_t D, cudaStream_t stream) {
  if (N == 0 || D == 0) return;
  const dim3 grid((N + kIdealTile - 1) / kIdealTile, (D + kIdealTile - 1) / kIdealTile);
  const dim3 block(kIdealTile, kIdealThreadsY);
  ideal_backward_kernel<scalar_t><<<grid, block, 0, stream>>>(x, y, sigma, m, l, grad, grad_x, N, M, D);
}

#define INSTANTIATE(scalar_t)                                                                          \
  template void launch_ideal_forward<scalar_t>(const scalar_t*, const scalar_t*, const float*, scalar_t*, \
                                               float*, float*, int64_t, int64_t, int64_t, cudaStream_t); \
  template void launch_ideal_backward<scalar_t>(const scalar_t*, const scalar_t*, const float*,         \
                                                const float*, const float*, const scalar_t*, scalar_t*, \
                                                int64_t, int64_t, int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
