// Launchers of the mixture-of-experts CUDA kernels (moe_routing.cu, moe_rows.cu).
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
