// The course's streaming softmax / sparsemax over stored rows (course/streaming.py, the contract; the
// Triton twin is triton_streaming.py): flash attention's loop in CUDA C++ with shared-memory tiles, in
// float32 whatever the storage type. One design for modern Hopfield retrieval (Ramsauer et al. 2020,
// eq. 3: h = 0, t_i = 1 / beta; STanHop's sparsemax form) and the ideal denoiser (Karras et al. 2022,
// eq. 2: h = 1/2, t_i = sigma_i^2):
//     logit_ij = (x_i . y_j - h |y_j|^2) / t_i,    out_i = sum_j p_ij y_j.
//
// The tiled kernels (forward, the queries' gradient, the stored rows' gradient) take kStreamTile x 8
// threads and walk a kStreamTile x kStreamTile tile of [queries, stored rows] at a time:
//   1. tile_logits: the tile of x_i . y_j, |y_j|^2 (and <g_i, y_j> in the backward) over D in steps of
//      kStreamTile through shared memory; thread (tx, ty) owns stored row tx of queries ty + 8 r,
//      r < kStreamRowsPerThread.
//   2. the weights: softmax, with one thread per query updating the running maximum m, the running sum
//      l of exp(logit - m) and the factor exp(m_old - m_new) that rescales what was summed so far
//      (Milakov & Gimelshein 2018; Dao et al. 2022, Algorithm 1); or sparsemax, max(logit - tau, 0), with
//      tau from sparsemax_threshold_kernel.
//   3. every thread adds weights x rows for its queries (or rows) and its column of the block.
// The [N, M] weights never exist; m and l are saved apart (m + log l would cost the float32 weights a
// relative error of eps |m|). The backward runs two sweeps: delta_i first, then the gradients, both from
// the same products <g_i, y_j>, so that one-hot weights give exactly 0. A NaN query gives NaN outputs
// (its softmax maximum stays -inf: no -inf - -inf is formed; its sparsemax threshold is NaN) and, with
// sparsemax, a zero query gradient: a NaN weight is outside the support p > 0.
//
// The sparsemax threshold (Martins & Astudillo 2016, Algorithm 1) needs the whole row of logits sorted:
// one block per query holds its row (M <= kMaxSparseRows) in shared memory, sorts it with a bitonic
// network, sums its prefixes with a block scan and counts k = #{k : 1 + k z_(k) > sum_{r <= k} z_(r)}.
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "streaming_kernels.h"

constexpr int kThreadsY = kStreamTile / kStreamRowsPerThread;
using Tile = float[kStreamTile][kStreamTile + 1];  // +1: a column of a tile is read without bank conflicts
constexpr int kSortColumns = 16;  // columns of y a step of the sparsemax threshold's logits

// Loads rows [row0, row0 + kStreamTile) x columns [col0, col0 + kStreamTile) of a row-major [rows, D]
// array into tile, zeros past its end.
template <typename scalar_t>
__device__ __forceinline__ void load_tile(Tile& tile, const scalar_t* __restrict__ src, int64_t row0,
                                          int64_t rows, int64_t col0, int64_t D) {
  const int64_t col = col0 + threadIdx.x;
  for (int r = threadIdx.y; r < kStreamTile; r += kThreadsY) {
    const int64_t row = row0 + r;
    tile[r][threadIdx.x] = row < rows && col < D ? static_cast<float>(src[row * D + col]) : 0.0f;
  }
}

// Step 1: logit[r] = (x . y - h |y|^2) / t of this thread's queries n0 + ty + 8 r and stored row m0 + tx
// (-inf past M), t the block's temperatures [kStreamTile], and g_dot[r] = <g, y> if g is given. Ends past
// a barrier: the tiles may be overwritten.
template <typename scalar_t>
__device__ void tile_logits(const scalar_t* __restrict__ x, const scalar_t* __restrict__ g,
                            const scalar_t* __restrict__ y, const float* t, float h, Tile& x_tile,
                            Tile& g_tile, Tile& y_tile, int64_t n0, int64_t m0, int64_t N, int64_t M,
                            int64_t D, float* logit, float* g_dot) {
  float dot[kStreamRowsPerThread] = {};
  float norm = 0.0f;  // |y_j|^2 of this thread's stored row
  for (int r = 0; r < kStreamRowsPerThread; ++r) g_dot[r] = 0.0f;
  for (int64_t d0 = 0; d0 < D; d0 += kStreamTile) {
    load_tile(x_tile, x, n0, N, d0, D);
    load_tile(y_tile, y, m0, M, d0, D);
    if (g) load_tile(g_tile, g, n0, N, d0, D);
    __syncthreads();
    for (int k = 0; k < kStreamTile; ++k) {
      const float v = y_tile[threadIdx.x][k];
      norm += v * v;
      for (int r = 0; r < kStreamRowsPerThread; ++r) {
        dot[r] += x_tile[threadIdx.y + r * kThreadsY][k] * v;
        if (g) g_dot[r] += g_tile[threadIdx.y + r * kThreadsY][k] * v;
      }
    }
    __syncthreads();
  }
  const bool stored = m0 + threadIdx.x < M;
  for (int r = 0; r < kStreamRowsPerThread; ++r)
    logit[r] = stored ? (dot[r] - h * norm) / t[threadIdx.y + r * kThreadsY] : -INFINITY;
}

// sparsemax's weight max(logit - tau, 0), NaN kept (fmaxf would drop it), -inf past M giving 0.
__device__ __forceinline__ float sparse_weight(float logit, float tau) {
  const float p = logit - tau;
  return p < 0.0f ? 0.0f : p;
}

// The weight p_ij from a logit and the query's statistics: (m, l) for softmax, m = -inf replaced by 0
// (a row of NaN logits: NaN weights); (tau, unused) for sparsemax.
template <bool kSparse>
__device__ __forceinline__ float weight_of(float logit, float stat0, float stat1) {
  if constexpr (kSparse) {
    return sparse_weight(logit, stat0);
  } else {
    return expf(logit - stat0) / stat1;
  }
}

// dL/dlogit_ij = p_ij (gp - delta_i) for softmax, [p_ij > 0] (gp - delta_i) for sparsemax (a NaN weight
// is outside the support).
template <bool kSparse>
__device__ __forceinline__ float logit_gradient(float p, float gp, float delta) {
  if constexpr (kSparse) {
    return p > 0.0f ? gp - delta : 0.0f;
  } else {
    return p * (gp - delta);
  }
}

// Step 3: acc[r] (scaled by scale[query] first, if given) += sum_k weight[query][k] y[m0 + k, column].
// Starts and ends past a barrier.
template <typename scalar_t>
__device__ void add_weighted_rows(const scalar_t* __restrict__ y, Tile& weight, Tile& y_tile,
                                  const float* scale, int64_t m0, int64_t M, int64_t col0, int64_t D,
                                  float* acc) {
  load_tile(y_tile, y, m0, M, col0, D);
  __syncthreads();
  for (int r = 0; r < kStreamRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kThreadsY;
    float a = scale ? acc[r] * scale[q] : acc[r];
    for (int k = 0; k < kStreamTile; ++k) a += weight[q][k] * y_tile[k][threadIdx.x];
    acc[r] = a;
  }
  __syncthreads();
}

// Loads the block's per-query values: temperatures, then the statistics (m with -inf as 0 and l for
// softmax, tau for sparsemax; padding past N) and delta if given. Thread row 0 only; no barrier.
template <bool kSparse>
__device__ __forceinline__ void load_query_stats(const float* __restrict__ temperature,
                                                 const float* __restrict__ stat0,
                                                 const float* __restrict__ stat1,
                                                 const float* __restrict__ delta, int64_t n0, int64_t N,
                                                 float* t, float* s0, float* s1, float* d) {
  if (threadIdx.y != 0) return;
  const int q = threadIdx.x;
  const int64_t i = n0 + q;
  const bool query = i < N;
  t[q] = query ? temperature[i] : 1.0f;
  if constexpr (kSparse) {
    s0[q] = query ? stat0[i] : 0.0f;
    s1[q] = 1.0f;
  } else {
    const float m = query ? stat0[i] : 0.0f;
    s0[q] = m == -INFINITY ? 0.0f : m;
    s1[q] = query ? stat1[i] : 1.0f;
  }
  if (delta) d[q] = query ? delta[i] : 0.0f;
}

template <typename scalar_t>
__global__ void sparsemax_threshold_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                           const float* __restrict__ temperature, float h,
                                           float* __restrict__ tau, int64_t M, int64_t D) {
  __shared__ float row[kMaxSparseRows];  // the logits, sorted, then their prefix sums
  __shared__ float y_chunk[kSortThreads][kSortColumns + 1];  // rows j0.., columns d0.. of y
  __shared__ float partial[2][kSortThreads];  // the threads' sums, scanned (two buffers)
  __shared__ int nans;     // NaN logits of the row
  __shared__ int support;  // k_i
  const int64_t i = blockIdx.x;
  const int tid = threadIdx.x;
  const int rows = static_cast<int>(M);
  int padded = 1;  // the sort's length: a power of two, -inf past M
  while (padded < rows) padded <<= 1;
  if (tid == 0) {
    nans = 0;
    support = 0;
  }
  const float t = temperature[i];
  const scalar_t* xi = x + i * D;
  int own_nans = 0;
  // The logits, kSortThreads stored rows a pass (thread tid owns row j0 + tid), through chunks of y
  // loaded row by row into shared memory (coalesced), kSortColumns columns at a time.
  for (int j0 = 0; j0 < padded; j0 += kSortThreads) {
    float dot = 0.0f, norm = 0.0f;
    for (int64_t d0 = 0; d0 < D; d0 += kSortColumns) {
      for (int e = tid; e < kSortThreads * kSortColumns; e += kSortThreads) {
        const int r = e / kSortColumns, c = e % kSortColumns;
        const int64_t j = j0 + r, d = d0 + c;
        y_chunk[r][c] = j < rows && d < D ? static_cast<float>(y[j * D + d]) : 0.0f;
      }
      __syncthreads();
      for (int c = 0; c < kSortColumns && d0 + c < D; ++c) {
        const float v = y_chunk[tid][c];
        dot += static_cast<float>(xi[d0 + c]) * v;
        norm += v * v;
      }
      __syncthreads();
    }
    const int j = j0 + tid;
    if (j >= padded) continue;
    float z = -INFINITY;
    if (j < rows) {
      z = (dot - h * norm) / t;
      if (z != z) {  // sorted as -inf; the threshold becomes NaN
        ++own_nans;
        z = -INFINITY;
      }
    }
    row[j] = z;
  }
  __syncthreads();
  if (own_nans) atomicAdd(&nans, own_nans);
  // Bitonic sort, decreasing: merges of sorted runs of length `size`, compare-exchanges `stride` apart.
  for (int size = 2; size <= padded; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      for (int pair = tid; pair < padded / 2; pair += kSortThreads) {
        const int lo = 2 * pair - (pair & (stride - 1));
        const int hi = lo + stride;
        const bool decreasing = (lo & size) == 0;
        const float a = row[lo], b = row[hi];
        if ((a < b) == decreasing) {
          row[lo] = b;
          row[hi] = a;
        }
      }
      __syncthreads();
    }
  }
  // Prefix sums of z_(1..M): each thread sums a contiguous chunk, the chunks' sums are scanned
  // (Hillis & Steele), then each thread writes its chunk's prefix sums and counts its support.
  const int chunk = (padded + kSortThreads - 1) / kSortThreads;
  const int begin = tid * chunk < rows ? tid * chunk : rows;
  const int end = begin + chunk < rows ? begin + chunk : rows;
  float own = 0.0f;
  for (int k = begin; k < end; ++k) own += row[k];
  partial[0][tid] = own;
  __syncthreads();
  int src = 0;
  for (int offset = 1; offset < kSortThreads; offset <<= 1) {
    const float v = partial[src][tid] + (tid >= offset ? partial[src][tid - offset] : 0.0f);
    partial[1 - src][tid] = v;
    src = 1 - src;
    __syncthreads();
  }
  float running = tid > 0 ? partial[src][tid - 1] : 0.0f;
  int own_support = 0;
  for (int k = begin; k < end; ++k) {
    const float z = row[k];
    running += z;
    if (1.0f + static_cast<float>(k + 1) * z > running) ++own_support;  // a prefix of the ranks
    row[k] = running;
  }
  if (own_support) atomicAdd(&support, own_support);
  __syncthreads();
  if (tid == 0) {
    const int k = support > 1 ? support : 1;
    tau[i] = nans ? NAN : (row[k - 1] - 1.0f) / static_cast<float>(k);
  }
}

template <typename scalar_t, bool kSparse>
__global__ void streaming_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                         const float* __restrict__ temperature, float h,
                                         float* __restrict__ stat0, float* __restrict__ stat1,
                                         scalar_t* __restrict__ out, int64_t N, int64_t M, int64_t D) {
  __shared__ Tile x_tile;
  __shared__ Tile y_tile;
  __shared__ Tile p_tile;  // logits, then weights [query, stored row]
  __shared__ float t[kStreamTile];      // temperatures
  __shared__ float m[kStreamTile];      // softmax: running maximum of the logits; sparsemax: tau
  __shared__ float l[kStreamTile];      // softmax: running sum of exp(logit - m)
  __shared__ float scale[kStreamTile];  // softmax: exp(m_old - m_new) of the last tile
  const int64_t n0 = blockIdx.x * static_cast<int64_t>(kStreamTile);
  const int64_t col0 = blockIdx.y * static_cast<int64_t>(kStreamTile);
  if (threadIdx.y == 0) {
    const int64_t i = n0 + threadIdx.x;
    t[threadIdx.x] = i < N ? temperature[i] : 1.0f;
    if constexpr (kSparse) {
      m[threadIdx.x] = i < N ? stat0[i] : 0.0f;
    } else {
      m[threadIdx.x] = -INFINITY;
      l[threadIdx.x] = 0.0f;
    }
  }
  __syncthreads();
  float acc[kStreamRowsPerThread] = {};  // running sum of weight x y[j, column]
  float logit[kStreamRowsPerThread], unused[kStreamRowsPerThread];
  for (int64_t m0 = 0; m0 < M; m0 += kStreamTile) {
    tile_logits<scalar_t>(x, nullptr, y, t, h, x_tile, x_tile, y_tile, n0, m0, N, M, D, logit, unused);
    if constexpr (kSparse) {
      for (int r = 0; r < kStreamRowsPerThread; ++r) {
        const int q = threadIdx.y + r * kThreadsY;
        p_tile[q][threadIdx.x] = sparse_weight(logit[r], m[q]);
      }
      add_weighted_rows(y, p_tile, y_tile, nullptr, m0, M, col0, D, acc);
    } else {
      for (int r = 0; r < kStreamRowsPerThread; ++r)
        p_tile[threadIdx.y + r * kThreadsY][threadIdx.x] = logit[r];
      __syncthreads();
      if (threadIdx.y == 0) {  // step 2, one thread per query
        const int q = threadIdx.x;
        float m_new = m[q];
        for (int k = 0; k < kStreamTile; ++k) m_new = fmaxf(m_new, p_tile[q][k]);  // -inf: NaN logits
        const float shift = m_new == -INFINITY ? 0.0f : m_new;
        float sum = 0.0f;
        for (int k = 0; k < kStreamTile; ++k) {
          const float p = expf(p_tile[q][k] - shift);  // 0 past M
          p_tile[q][k] = p;
          sum += p;
        }
        scale[q] = expf(m[q] - shift);  // 0 on the first tile (m = -inf)
        l[q] = l[q] * scale[q] + sum;
        m[q] = m_new;
      }
      __syncthreads();
      add_weighted_rows(y, p_tile, y_tile, scale, m0, M, col0, D, acc);
    }
  }
  const int64_t col = col0 + threadIdx.x;
  for (int r = 0; r < kStreamRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kThreadsY;
    const int64_t i = n0 + q;
    const float value = kSparse ? acc[r] : acc[r] / l[q];
    if (i < N && col < D) out[i * D + col] = static_cast<scalar_t>(value);  // rounded to nearest
  }
  if constexpr (!kSparse) {
    if (blockIdx.y == 0 && threadIdx.y == 0 && n0 + threadIdx.x < N) {
      stat0[n0 + threadIdx.x] = m[threadIdx.x];
      stat1[n0 + threadIdx.x] = l[threadIdx.x];
    }
  }
}

template <typename scalar_t, bool kSparse>
__global__ void streaming_backward_x_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                            const float* __restrict__ temperature, float h,
                                            const float* __restrict__ stat0, const float* __restrict__ stat1,
                                            const scalar_t* __restrict__ grad, scalar_t* __restrict__ grad_x,
                                            float* __restrict__ delta_out, int64_t N, int64_t M, int64_t D) {
  __shared__ Tile x_tile;
  __shared__ Tile g_tile;
  __shared__ Tile y_tile;
  __shared__ Tile w_tile;  // dL/dlogit [query, stored row]; first the parts of delta
  __shared__ float t[kStreamTile];
  __shared__ float s0[kStreamTile];
  __shared__ float s1[kStreamTile];
  __shared__ float delta[kStreamTile];
  const int64_t n0 = blockIdx.x * static_cast<int64_t>(kStreamTile);
  const int64_t col0 = blockIdx.y * static_cast<int64_t>(kStreamTile);
  load_query_stats<kSparse>(temperature, stat0, stat1, nullptr, n0, N, t, s0, s1, delta);
  __syncthreads();
  float logit[kStreamRowsPerThread], g_dot[kStreamRowsPerThread];
  float part[kStreamRowsPerThread] = {}, support[kStreamRowsPerThread] = {};
  for (int64_t m0 = 0; m0 < M; m0 += kStreamTile) {  // sweep 1: this thread's row's share of delta
    tile_logits(x, grad, y, t, h, x_tile, g_tile, y_tile, n0, m0, N, M, D, logit, g_dot);
    for (int r = 0; r < kStreamRowsPerThread; ++r) {
      const int q = threadIdx.y + r * kThreadsY;
      const float p = weight_of<kSparse>(logit[r], s0[q], s1[q]);
      if constexpr (kSparse) {
        if (p > 0.0f) {
          part[r] += g_dot[r];
          support[r] += 1.0f;
        }
      } else {
        part[r] += p * g_dot[r];
      }
    }
  }
  for (int r = 0; r < kStreamRowsPerThread; ++r) {
    w_tile[threadIdx.y + r * kThreadsY][threadIdx.x] = part[r];
    if constexpr (kSparse) y_tile[threadIdx.y + r * kThreadsY][threadIdx.x] = support[r];
  }
  __syncthreads();
  if (threadIdx.y == 0) {
    float sum = 0.0f, size = 0.0f;
    for (int k = 0; k < kStreamTile; ++k) sum += w_tile[threadIdx.x][k];
    if constexpr (kSparse) {
      for (int k = 0; k < kStreamTile; ++k) size += y_tile[threadIdx.x][k];
      sum /= size > 1.0f ? size : 1.0f;  // the mean of <g_i, y_j> over the support
    }
    delta[threadIdx.x] = sum;
  }
  __syncthreads();
  float acc[kStreamRowsPerThread] = {};
  for (int64_t m0 = 0; m0 < M; m0 += kStreamTile) {  // sweep 2
    tile_logits(x, grad, y, t, h, x_tile, g_tile, y_tile, n0, m0, N, M, D, logit, g_dot);
    for (int r = 0; r < kStreamRowsPerThread; ++r) {
      const int q = threadIdx.y + r * kThreadsY;
      const float p = weight_of<kSparse>(logit[r], s0[q], s1[q]);
      w_tile[q][threadIdx.x] = logit_gradient<kSparse>(p, g_dot[r], delta[q]);
    }
    add_weighted_rows(y, w_tile, y_tile, nullptr, m0, M, col0, D, acc);
  }
  const int64_t col = col0 + threadIdx.x;
  for (int r = 0; r < kStreamRowsPerThread; ++r) {
    const int q = threadIdx.y + r * kThreadsY;
    const int64_t i = n0 + q;
    if (i < N && col < D) grad_x[i * D + col] = static_cast<scalar_t>(acc[r] / t[q]);
  }
  if (blockIdx.y == 0 && threadIdx.y == 0 && n0 + threadIdx.x < N)
    delta_out[n0 + threadIdx.x] = delta[threadIdx.x];
}

// Blocks over kStreamTile stored rows and kStreamTile columns; a loop over the queries kStreamTile at a
// time. Thread (tx, ty) first owns stored row tx of queries ty + 8 r (the layout of tile_logits), then
// stored rows ty + 8 r at column tx of the block.
template <typename scalar_t, bool kSparse>
__global__ void streaming_backward_y_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                            const float* __restrict__ temperature, float h,
                                            const float* __restrict__ stat0, const float* __restrict__ stat1,
                                            const float* __restrict__ delta_in,
                                            const scalar_t* __restrict__ grad, scalar_t* __restrict__ grad_y,
                                            int64_t N, int64_t M, int64_t D) {
  __shared__ Tile x_tile;
  __shared__ Tile g_tile;
  __shared__ Tile y_tile;
  __shared__ Tile p_tile;  // p_ij [query, stored row]
  __shared__ Tile w_tile;  // dL/dlogit_ij / t_i [query, stored row]
  __shared__ float t[kStreamTile];
  __shared__ float s0[kStreamTile];
  __shared__ float s1[kStreamTile];
  __shared__ float delta[kStreamTile];
  const int64_t m0 = blockIdx.x * static_cast<int64_t>(kStreamTile);
  const int64_t col0 = blockIdx.y * static_cast<int64_t>(kStreamTile);
  float acc_values[kStreamRowsPerThread] = {};  // sum_i p_ij g_i[column]
  float acc_keys[kStreamRowsPerThread] = {};    // sum_i w_ij x_i[column]
  float w_sum[kStreamRowsPerThread] = {};       // sum_i w_ij
  float logit[kStreamRowsPerThread], g_dot[kStreamRowsPerThread];
  for (int64_t n0 = 0; n0 < N; n0 += kStreamTile) {
    load_query_stats<kSparse>(temperature, stat0, stat1, delta_in, n0, N, t, s0, s1, delta);
    __syncthreads();
    tile_logits(x, grad, y, t, h, x_tile, g_tile, y_tile, n0, m0, N, M, D, logit, g_dot);
    for (int r = 0; r < kStreamRowsPerThread; ++r) {
      const int q = threadIdx.y + r * kThreadsY;
      const bool query = n0 + q < N;
      const float p = query ? weight_of<kSparse>(logit[r], s0[q], s1[q]) : 0.0f;
      p_tile[q][threadIdx.x] = p;
      w_tile[q][threadIdx.x] = query ? logit_gradient<kSparse>(p, g_dot[r], delta[q]) / t[q] : 0.0f;
    }
    load_tile(g_tile, grad, n0, N, col0, D);
    load_tile(x_tile, x, n0, N, col0, D);
    __syncthreads();
    for (int r = 0; r < kStreamRowsPerThread; ++r) {
      const int j = threadIdx.y + r * kThreadsY;
      float values = acc_values[r], keys = acc_keys[r], sum = w_sum[r];
      for (int k = 0; k < kStreamTile; ++k) {
        values += p_tile[k][j] * g_tile[k][threadIdx.x];
        keys += w_tile[k][j] * x_tile[k][threadIdx.x];
        sum += w_tile[k][j];
      }
      acc_values[r] = values;
      acc_keys[r] = keys;
      w_sum[r] = sum;
    }
    __syncthreads();
  }
  const int64_t col = col0 + threadIdx.x;
  for (int r = 0; r < kStreamRowsPerThread; ++r) {
    const int64_t j = m0 + threadIdx.y + r * kThreadsY;
    if (j < M && col < D) {
      const float yj = static_cast<float>(y[j * D + col]);
      grad_y[j * D + col] = static_cast<scalar_t>(acc_values[r] + acc_keys[r] - 2.0f * h * w_sum[r] * yj);
    }
  }
}

namespace {

dim3 tile_grid(int64_t rows, int64_t D) {  // at least one column block, so the statistics are written
  const int64_t columns = (D + kStreamTile - 1) / kStreamTile;
  return dim3(static_cast<unsigned>((rows + kStreamTile - 1) / kStreamTile),
              static_cast<unsigned>(columns > 0 ? columns : 1));
}

const dim3 kTileBlock(kStreamTile, kThreadsY);

}  // namespace

template <typename scalar_t>
void launch_sparsemax_threshold(const scalar_t* x, const scalar_t* y, const float* temperature,
                                float norm_weight, float* tau, int64_t N, int64_t M, int64_t D,
                                cudaStream_t stream) {
  if (N == 0) return;
  sparsemax_threshold_kernel<scalar_t><<<static_cast<unsigned>(N), kSortThreads, 0, stream>>>(
      x, y, temperature, norm_weight, tau, M, D);
}

template <typename scalar_t>
void launch_streaming_forward(const scalar_t* x, const scalar_t* y, const float* temperature,
                              float norm_weight, bool sparse, float* stat0, float* stat1, scalar_t* out,
                              int64_t N, int64_t M, int64_t D, cudaStream_t stream) {
  if (N == 0) return;
  const dim3 grid = tile_grid(N, D);
  if (sparse)
    streaming_forward_kernel<scalar_t, true><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, out, N, M, D);
  else
    streaming_forward_kernel<scalar_t, false><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, out, N, M, D);
}

template <typename scalar_t>
void launch_streaming_backward_x(const scalar_t* x, const scalar_t* y, const float* temperature,
                                 float norm_weight, bool sparse, const float* stat0, const float* stat1,
                                 const scalar_t* grad, scalar_t* grad_x, float* delta, int64_t N, int64_t M,
                                 int64_t D, cudaStream_t stream) {
  if (N == 0) return;
  const dim3 grid = tile_grid(N, D);
  if (sparse)
    streaming_backward_x_kernel<scalar_t, true><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, grad, grad_x, delta, N, M, D);
  else
    streaming_backward_x_kernel<scalar_t, false><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, grad, grad_x, delta, N, M, D);
}

template <typename scalar_t>
void launch_streaming_backward_y(const scalar_t* x, const scalar_t* y, const float* temperature,
                                 float norm_weight, bool sparse, const float* stat0, const float* stat1,
                                 const float* delta, const scalar_t* grad, scalar_t* grad_y, int64_t N,
                                 int64_t M, int64_t D, cudaStream_t stream) {
  if (M == 0 || D == 0) return;  // with N = 0 the blocks still run: they write the zero gradient
  const dim3 grid = tile_grid(M, D);
  if (sparse)
    streaming_backward_y_kernel<scalar_t, true><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, delta, grad, grad_y, N, M, D);
  else
    streaming_backward_y_kernel<scalar_t, false><<<grid, kTileBlock, 0, stream>>>(
        x, y, temperature, norm_weight, stat0, stat1, delta, grad, grad_y, N, M, D);
}

#define INSTANTIATE(scalar_t)                                                                             \
  template void launch_sparsemax_threshold<scalar_t>(const scalar_t*, const scalar_t*, const float*, float, \
                                                     float*, int64_t, int64_t, int64_t, cudaStream_t);     \
  template void launch_streaming_forward<scalar_t>(const scalar_t*, const scalar_t*, const float*, float,   \
                                                   bool, float*, float*, scalar_t*, int64_t, int64_t,       \
                                                   int64_t, cudaStream_t);                                  \
  template void launch_streaming_backward_x<scalar_t>(const scalar_t*, const scalar_t*, const float*,      \
                                                      float, bool, const float*, const float*,              \
                                                      const scalar_t*, scalar_t*, float*, int64_t, int64_t, \
                                                      int64_t, cudaStream_t);                               \
  template void launch_streaming_backward_y<scalar_t>(const scalar_t*, const scalar_t*, const float*,      \
                                                      float, bool, const float*, const float*,              \
                                                      const float*, const scalar_t*, scalar_t*, int64_t,    \
                                                      int64_t, int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
