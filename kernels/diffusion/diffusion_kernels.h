// Launchers of the diffusion CUDA kernels (diffusion_ideal.cu, diffusion_steps.cu), the contracts of
// the Triton backend (triton_ideal.py, triton_heun.py, triton_edm.py). Plain pointers and a stream, no
// PyTorch types, so the .cu files compile with nvcc alone; diffusion_binding.cpp turns tensors into
// these calls. Rows are row-major [N, D] or [M, D] in the storage type scalar_t (float, __half,
// __nv_bfloat16); levels and the softmax's statistics are float32 [N]; arithmetic is in float32.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kIdealTile = 32;          // queries and points per tile of the ideal denoiser, columns a step
constexpr int kIdealRowsPerThread = 4;  // queries per thread: kIdealTile x (kIdealTile / 4) threads a block
constexpr int kStepThreads = 256;       // threads per block of the elementwise steps

// The ideal denoiser (Karras et al. 2022, eq. 2) as a streaming softmax over the points y [M, D]:
// out_i = sum_j p_ij y_j with logit_ij = (x_i . y_j - |y_j|^2 / 2) / sigma_i^2, p_ij = exp(logit_ij -
// m_i) / l_i; saves the largest logit m [N] and l [N] = sum_j exp(logit_ij - m_i), apart.
template <typename scalar_t>
void launch_ideal_forward(const scalar_t* x, const scalar_t* y, const float* sigma, scalar_t* out, float* m,
                          float* l, int64_t N, int64_t M, int64_t D, cudaStream_t stream);

// Its backward with respect to x, from g = dL/d out: grad_x_i = sum_j p_ij (<g_i, y_j> - delta_i) y_j /
// sigma_i^2 with delta_i = sum_j p_ij <g_i, y_j> summed in a first sweep over the points.
template <typename scalar_t>
void launch_ideal_backward(const scalar_t* x, const scalar_t* y, const float* sigma, const float* m,
                           const float* l, const scalar_t* grad, scalar_t* grad_x, int64_t N, int64_t M,
                           int64_t D, cudaStream_t stream);

// One step of EDM's Algorithm 2 per row: Heun's step from sigma to sigma_next (Euler's where
// sigma_next = 0), plus noise of variance sigma_next_hat^2 - sigma_next^2.
template <typename scalar_t>
void launch_heun_forward(const scalar_t* x, const scalar_t* denoised, const scalar_t* denoised_next,
                         const scalar_t* noise, const float* sigma, const float* sigma_next,
                         const float* sigma_next_hat, scalar_t* out, int64_t N, int64_t D,
                         cudaStream_t stream);

// The step's four gradients from dL/d out, in the reference's order of operations.
template <typename scalar_t>
void launch_heun_backward(const scalar_t* grad, const float* sigma, const float* sigma_next,
                          const float* sigma_next_hat, scalar_t* grad_x, scalar_t* grad_denoised,
                          scalar_t* grad_denoised_next, scalar_t* grad_noise, int64_t N, int64_t D,
                          cudaStream_t stream);

// EDM's preconditioning after the network (eq. 7, Table 1): out = c_skip x + c_out raw per row.
template <typename scalar_t>
void launch_edm_forward(const scalar_t* x, const scalar_t* raw, const float* sigma, scalar_t* out,
                        int64_t N, int64_t D, float sigma_data, float sigma_data_sq, cudaStream_t stream);

// Its backward: grad_x = c_skip g, grad_raw = c_out g.
template <typename scalar_t>
void launch_edm_backward(const scalar_t* grad, const float* sigma, scalar_t* grad_x, scalar_t* grad_raw,
                         int64_t N, int64_t D, float sigma_data, float sigma_data_sq, cudaStream_t stream);
