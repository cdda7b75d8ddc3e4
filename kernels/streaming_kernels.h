// Launchers of the course's streaming softmax / sparsemax over stored rows (streaming_softmax.cu), the
// contract of course/streaming.py, which the Triton module triton_streaming.py implements too. Plain pointers
// and a stream, no PyTorch types, so the .cu file compiles with nvcc alone; streaming_binding.cpp turns
// tensors into these calls. Used by hopfield.retrieve, hopfield.sparse_retrieve (h = 0, t_i = 1 / beta) and
// diffusion.ideal_denoiser (h = 1/2, t_i = sigma_i^2).
//
// For queries x [N, D] and stored rows y [M, D], row-major in the storage type scalar_t (float, __half,
// __nv_bfloat16), a per-query temperature t [N] float32 and a norm weight h:
//     logit_ij = (x_i . y_j - h |y_j|^2) / t_i,    out_i = sum_j p_ij y_j,
// with p_i = softmax(logit_i) (statistics m [N], l [N] float32, kept apart) or sparsemax(logit_i)
// (statistic tau [N] float32, p_ij = max(logit_ij - tau_i, 0)). Arithmetic is float32 throughout; every
// store to scalar_t rounds to nearest. `stat0, stat1` are (m, l) for softmax and (tau, unused) for
// sparsemax.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kStreamTile = 32;          // queries and stored rows per tile, output columns a block
constexpr int kStreamRowsPerThread = 4;  // tile rows per thread: kStreamTile x (kStreamTile / 4) threads
constexpr int kMaxSparseRows = 4096;     // course.streaming.MAX_SPARSE_ROWS: one row of logits on chip
constexpr int kSortThreads = 256;        // threads of a block of the sparsemax threshold

// The sparsemax threshold tau_i of each query's whole row of logits (Martins & Astudillo 2016,
// Algorithm 1): one block per query sorts the row (M <= kMaxSparseRows) in shared memory, then
// k_i = max{k : 1 + k z_(k) > sum_{r <= k} z_(r)}, tau_i = (sum_{r <= k_i} z_(r) - 1) / k_i; NaN for a row
// with a NaN logit.
template <typename scalar_t>
void launch_sparsemax_threshold(const scalar_t* x, const scalar_t* y, const float* temperature,
                                float norm_weight, float* tau, int64_t N, int64_t M, int64_t D,
                                cudaStream_t stream);

// out [N, D] = sum_j p_ij y_j in one streaming sweep over the stored rows. softmax (sparse = false):
// writes m (the largest logit) and l (sum_j exp(logit_ij - m_i)); sparsemax: reads tau from
// launch_sparsemax_threshold. Every query row of m and l is written, also where D = 0.
template <typename scalar_t>
void launch_streaming_forward(const scalar_t* x, const scalar_t* y, const float* temperature,
                              float norm_weight, bool sparse, float* stat0, float* stat1, scalar_t* out,
                              int64_t N, int64_t M, int64_t D, cudaStream_t stream);

// The queries' gradient from g = dL/d out in two sweeps over the stored rows: delta_i first
// (sum_j p_ij <g_i, y_j> for softmax; the mean of <g_i, y_j> over the support p_ij > 0 for sparsemax),
// saved in delta [N], then grad_x_i = sum_j w_ij y_j / t_i with w_ij = p_ij (<g_i, y_j> - delta_i)
// (softmax) or [p_ij > 0] (<g_i, y_j> - delta_i) (sparsemax).
template <typename scalar_t>
void launch_streaming_backward_x(const scalar_t* x, const scalar_t* y, const float* temperature,
                                 float norm_weight, bool sparse, const float* stat0, const float* stat1,
                                 const scalar_t* grad, scalar_t* grad_x, float* delta, int64_t N, int64_t M,
                                 int64_t D, cudaStream_t stream);

// The stored rows' gradient, blocks over the rows, a loop over the queries (delta from
// launch_streaming_backward_x): grad_y_j = sum_i p_ij g_i + sum_i w_ij (x_i - 2 h y_j) / t_i.
template <typename scalar_t>
void launch_streaming_backward_y(const scalar_t* x, const scalar_t* y, const float* temperature,
                                 float norm_weight, bool sparse, const float* stat0, const float* stat1,
                                 const float* delta, const scalar_t* grad, scalar_t* grad_y, int64_t N,
                                 int64_t M, int64_t D, cudaStream_t stream);
