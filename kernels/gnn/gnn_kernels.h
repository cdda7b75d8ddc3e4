// Launchers of the graph CUDA kernels (gnn_spmm.cu, gnn_attention.cu), the contracts of the Triton
// backend (triton_spmm.py, triton_attention.py). Plain pointers and a stream, no PyTorch types, so the
// .cu files compile with nvcc alone; gnn_binding.cpp turns tensors into these calls.
// A graph is a CSR: rowptr [N + 1], col [E] (index_t: int32_t or int64_t); rows are row-major [*, D]
// with D = H C (H heads of C columns); per-edge and per-node numbers are float32 [E, H] and [N, H].
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kGraphThreads = 128;  // threads per block of every graph kernel

// out[i, d] = sum_{p in rowptr[i] .. rowptr[i + 1]} weight[p, d / C] * x[col[p], d]; weight [E, H] may
// be null (then 1). One thread per output element; an empty row gets 0.
template <typename scalar_t, typename index_t>
void launch_spmm(const index_t* rowptr, const index_t* col, const scalar_t* x, const float* weight,
                 scalar_t* out, int64_t N, int64_t D, int64_t C, int64_t H, cudaStream_t stream);

// out[p, h] = <a[dst[p], h, :], b[col[p], h, :]> over C columns, for every edge p and head h.
template <typename scalar_t, typename index_t>
void launch_edge_dot(const index_t* dst, const index_t* col, const scalar_t* a, const scalar_t* b,
                     float* out, int64_t E, int64_t H, int64_t C, cudaStream_t stream);

// GAT (Velickovic et al. 2018, eq. 1-4), per destination i and head h, an online softmax over i's
// edges: out[i, h, :] = sum_j alpha_ij h[j, h, :], lse[i, h] = log sum_j exp(e_ij) (0 without edges).
template <typename scalar_t, typename index_t>
void launch_gat_forward(const index_t* rowptr, const index_t* col, const scalar_t* h,
                        const scalar_t* a_src, const scalar_t* a_dst, scalar_t* out, float* lse,
                        int64_t N, int64_t H, int64_t C, float negative_slope, cudaStream_t stream);

// GAT's backward per destination and head, from lse and dot[p, h] = <g_i, h_j>: alpha [E, H],
// dz = alpha (dot - delta_i) LeakyReLU'(z) [E, H], and grad_dst[i, h] = sum_j dz [N, H].
template <typename scalar_t, typename index_t>
void launch_gat_backward(const index_t* rowptr, const index_t* col, const scalar_t* a_src,
                         const scalar_t* a_dst, const float* lse, const float* dot, float* alpha,
                         float* dz, float* grad_dst, int64_t N, int64_t H, float negative_slope,
                         cudaStream_t stream);
