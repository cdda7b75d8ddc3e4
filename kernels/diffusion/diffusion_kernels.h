// Launchers of the diffusion CUDA kernels (diffusion_steps.cu), the contracts of the Triton backend
// (triton_heun.py, triton_edm.py); the ideal denoiser runs the course's shared streaming kernels
// (kernels/streaming_softmax.cu, streaming_kernels.h). Plain pointers and a stream, no
// PyTorch types, so the .cu files compile with nvcc alone; diffusion_binding.cpp turns tensors into
// these calls. Rows are row-major [N, D] in the storage type scalar_t (float, __half, __nv_bfloat16);
// levels are float32 [N]; arithmetic is in float32.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kStepThreads = 256;  // threads per block of the elementwise steps

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
