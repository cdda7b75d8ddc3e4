// Launchers of the sequence-model CUDA kernels (ssm_scan.cu): the diagonal linear scan
// (course.ssm.scan.scan) and Mamba's selective scan (course.ssm.selective.selective_scan), forward and
// backward. Plain pointers and a stream, no PyTorch types, so the .cu file compiles with nvcc alone;
// ssm_binding.cpp turns tensors into these calls. Inputs are contiguous in the storage type scalar_t
// (float, __nv_bfloat16); states, checkpoints and partial sums are float32.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kScanThreads = 128;  // channels (b, d) per block of the scan kernels
constexpr int kChannels = 64;      // channels d per block of the selective-scan kernels (one batch row)
constexpr int kMaxState = 16;      // the largest state size N of the selective scan (Mamba's: 16)
constexpr int kChunk = 16;         // steps between two checkpoints of the selective scan's states

// h[b, t, d] = a[b, t, d] h[b, t - 1, d] + x[b, t, d] (h_{-1} = 0), a, x, h [B, T, D]; the state is
// float32 and also written to `states` [B, T, D] when it is not null (for the backward).
template <typename scalar_t>
void launch_scan_forward(const scalar_t* a, const scalar_t* x, scalar_t* h, float* states, int64_t B,
                         int64_t T, int64_t D, cudaStream_t stream);

// The reverse scan g_t = dh_t + a_{t+1} g_{t+1}: dx = g, da_t = g_t h_{t-1}, with h the float32
// states [B, T, D] of the forward.
template <typename scalar_t>
void launch_scan_backward(const scalar_t* a, const float* states, const scalar_t* dh, scalar_t* da,
                          scalar_t* dx, int64_t B, int64_t T, int64_t D, cudaStream_t stream);

// y[b, t, d] = C[b, t] . h_t + D[d] u[b, t, d] with h_t = exp(delta_t A[d]) h_{t-1} + delta_t B[b, t] u_t,
// u, delta, y [B, T, D], A [D, N], B, C [B, T, N], D [D] or null (N <= kMaxState). When `checkpoints`
// is not null it receives the state entering every chunk of kChunk steps, [B, chunks, N, D] float32.
template <typename scalar_t>
void launch_selective_forward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                              const scalar_t* Bm, const scalar_t* Cm, const scalar_t* Dv, scalar_t* y,
                              float* checkpoints, int64_t B, int64_t T, int64_t D, int64_t N,
                              cudaStream_t stream);

// The gradients of the selective scan given dy [B, T, D] and the forward's checkpoints: du, ddelta
// [B, T, D] in scalar_t; float32 partial sums dA_part [B, D, N] and dD_part [B, D] (summed over the batch
// by the caller; dD_part null when D is), dB_part, dC_part [B, T, blocks, N] (over the blocks of
// kChannels channels), with blocks = ceil(D / kChannels).
template <typename scalar_t>
void launch_selective_backward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                               const scalar_t* Bm, const scalar_t* Cm, const scalar_t* Dv,
                               const float* checkpoints, const scalar_t* dy, scalar_t* du,
                               scalar_t* ddelta, float* dA_part, float* dB_part, float* dC_part,
                               float* dD_part, int64_t B, int64_t T, int64_t D, int64_t N,
                               cudaStream_t stream);
