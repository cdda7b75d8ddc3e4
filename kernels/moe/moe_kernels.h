// Launchers of the mixture-of-experts CUDA kernels (moe_routing.cu, moe_rows.cu, moe_grouped_gemm.cu).
// Plain pointers and a stream, no PyTorch types, so the .cu files compile with nvcc alone;
// moe_binding.cpp turns tensors into these calls. Indices are int64, rows are row-major [*, D].
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kRoutingBlock = 256;  // assignments per chunk of the counting sort

// hist[chunk, e]: assignments of expert e in each chunk of kRoutingBlock, in priority order p = j T + t.
void launch_expert_histogram(const int64_t* expert_index, int64_t* hist, int64_t T, int64_t k,
                             int64_t E, cudaStream_t stream);

// slot[t, j] = offsets[e] + rank of (t, j) among expert e's assignments, or -1 if rank >= counts[e].
void launch_dispatch_slot(const int64_t* expert_index, const int64_t* base, const int64_t* counts,
                          const int64_t* offsets, int64_t* slot, int64_t T, int64_t k, int64_t E,
                          cudaStream_t stream);

// out[slot[t, j]] = weight[t, j] * src[t] for kept assignments; weight may be null (then 1).
template <typename scalar_t>
void launch_scatter_rows(const scalar_t* src, const int64_t* slot, const scalar_t* weight,
                         scalar_t* out, int64_t T, int64_t k, int64_t D, cudaStream_t stream);

// out[t] = sum_j weight[t, j] * src[slot[t, j]] over kept assignments; weight may be null.
template <typename scalar_t>
void launch_gather_rows(const scalar_t* src, const int64_t* slot, const scalar_t* weight,
                        scalar_t* out, int64_t T, int64_t k, int64_t D, cudaStream_t stream);

// out[t, j] = <a[t], src[slot[t, j]]>, 0 for a dropped assignment.
template <typename scalar_t>
void launch_row_dot(const scalar_t* a, const scalar_t* src, const int64_t* slot, scalar_t* out,
                    int64_t T, int64_t k, int64_t D, cudaStream_t stream);

constexpr int kGemmTile = 32;          // grouped GEMM: rows and columns of an output tile, and the K step
constexpr int kGemmRowsPerThread = 4;  // outputs per thread: a block has kGemmTile x (kGemmTile / 4) threads

// What the grouped GEMM applies to each output before storing it.
enum class Epilogue : int {
  kNone = 0,
  kRelu = 1,      // max(value, 0): the experts' hidden layer
  kReluGrad = 2,  // value where gate > 0, else 0: the gradient through that ReLU (gate = its output)
};

// out[rows of tile t] = epilogue(a[rows] W_e) with e = tile_expert[t], rows tile_start[t] .. tile_end[t];
// a [S, K], out and gate [S, N] row-major fp32; W [E, K, N] at strides (w_stride_e, w_stride_k,
// w_stride_n), so a transposed weight is passed as strides; gate may be null unless kReluGrad.
void launch_grouped_matmul(const float* a, const float* w, const float* gate, float* out,
                           const int64_t* tile_expert, const int64_t* tile_start,
                           const int64_t* tile_end, int64_t n_tiles, int64_t K, int64_t N,
                           int64_t w_stride_e, int64_t w_stride_k, int64_t w_stride_n,
                           Epilogue epilogue, cudaStream_t stream);

// grad_w[e] = a[rows of e]^T b[rows of e] with rows offsets[e] .. offsets[e + 1]; a [S, K], b [S, N],
// grad_w [E, K, N] fp32; an expert without rows gets zeros.
void launch_grouped_weight_grad(const float* a, const float* b, const int64_t* offsets, float* grad_w,
                                int64_t E, int64_t K, int64_t N, cudaStream_t stream);
