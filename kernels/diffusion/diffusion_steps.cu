// The sampler's fused elementwise steps (the contracts of triton_heun.py and triton_edm.py): one step of
// EDM's Algorithm 2 and the preconditioning after the network (Karras et al. 2022, eq. 7 and Table 1),
// forward and backward. One thread per element of the row-major [N, D] rows, reading its row's levels;
// each reads its inputs once and writes its output once. Arithmetic is in fp32; offsets are int64.
//   Heun:  d = (x - D) / sigma,  x_E = x + (sigma' - sigma) d,  d' = (x_E - D') / sigma',
//          out = (sigma' > 0 ? x + (sigma' - sigma) (d + d') / 2 : x_E) + sqrt(sigma_hat'^2 - sigma'^2) noise
//          backward: the chain rule per element in the reference's order of operations, so that a last
//          step's grad x = g (1 - sigma / sigma) rounds as the reference's does.
//   EDM:   out = c_skip x + c_out raw,  c_skip = sd^2 / (sigma^2 + sd^2),
//          c_out = sigma sd / sqrt(sigma^2 + sd^2)  (sd = sigma_data, sd^2 rounded from double as the
//          reference's Python float is)
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "diffusion_kernels.h"

// sqrt(max(sigma_next_hat^2 - sigma_next^2, 0)), the churn noise's scale, from (sh - sn)(sh + sn): nvcc
// contracts sh^2 - sn^2 into fma(sh, sh, -sn^2), whose rounding error of sn^2 leaves a churn of ~2e-4 sn
// where sh == sn (no churn); the product is exactly 0 there.
__device__ __forceinline__ float churn_scale(float sn, float sh) {
  return sqrtf(fmaxf((sh - sn) * (sh + sn), 0.0f));
}

template <typename scalar_t>
__global__ void heun_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ denoised,
                                    const scalar_t* __restrict__ denoised_next,
                                    const scalar_t* __restrict__ noise, const float* __restrict__ sigma,
                                    const float* __restrict__ sigma_next,
                                    const float* __restrict__ sigma_next_hat, scalar_t* __restrict__ out,
                                    int64_t total, int64_t D) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // element (i, d)
  if (t >= total) return;
  const int64_t i = t / D;
  const float s = sigma[i], sn = sigma_next[i], sh = sigma_next_hat[i];
  const float xv = static_cast<float>(x[t]);
  const float d = (xv - static_cast<float>(denoised[t])) / s;
  const float euler = xv + (sn - s) * d;
  const float d_next = (euler - static_cast<float>(denoised_next[t])) / (sn > 0.0f ? sn : 1.0f);
  const float heun = xv + (sn - s) * (d + d_next) * 0.5f;
  const float next = sn > 0.0f ? heun : euler;
  out[t] = static_cast<scalar_t>(next + churn_scale(sn, sh) * static_cast<float>(noise[t]));
}

template <typename scalar_t>
__global__ void heun_backward_kernel(const scalar_t* __restrict__ grad, const float* __restrict__ sigma,
                                     const float* __restrict__ sigma_next,
                                     const float* __restrict__ sigma_next_hat, scalar_t* __restrict__ grad_x,
                                     scalar_t* __restrict__ grad_denoised,
                                     scalar_t* __restrict__ grad_denoised_next,
                                     scalar_t* __restrict__ grad_noise, int64_t total, int64_t D) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= total) return;
  const int64_t i = t / D;
  const float s = sigma[i], sn = sigma_next[i], sh = sigma_next_hat[i];
  const float g = static_cast<float>(grad[t]);
  const bool heun = sn > 0.0f;
  const float g_heun = heun ? g : 0.0f;
  const float g_slopes = g_heun * 0.5f * (sn - s);        // dL/d(d + d')
  const float g_diff = g_slopes / (heun ? sn : 1.0f);     // dL/d(x_E - D')
  const float g_euler = (heun ? 0.0f : g) + g_diff;       // dL/d x_E
  const float g_scaled = (g_slopes + g_euler * (sn - s)) / s;  // dL/d(x - D)
  grad_x[t] = static_cast<scalar_t>(g_heun + g_euler + g_scaled);
  grad_denoised[t] = static_cast<scalar_t>(-g_scaled);
  grad_denoised_next[t] = static_cast<scalar_t>(-g_diff);
  grad_noise[t] = static_cast<scalar_t>(churn_scale(sn, sh) * g);
}

// c_skip and c_out of Table 1 at level s.
__device__ __forceinline__ void skip_and_out(float s, float sigma_data, float sigma_data_sq, float* c_skip,
                                             float* c_out) {
  const float total = s * s + sigma_data_sq;
  *c_skip = sigma_data_sq / total;
  *c_out = s * sigma_data / sqrtf(total);
}

template <typename scalar_t>
__global__ void edm_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ raw,
                                   const float* __restrict__ sigma, scalar_t* __restrict__ out, int64_t total,
                                   int64_t D, float sigma_data, float sigma_data_sq) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= total) return;
  float c_skip, c_out;
  skip_and_out(sigma[t / D], sigma_data, sigma_data_sq, &c_skip, &c_out);
  out[t] = static_cast<scalar_t>(c_skip * static_cast<float>(x[t]) + c_out * static_cast<float>(raw[t]));
}

template <typename scalar_t>
__global__ void edm_backward_kernel(const scalar_t* __restrict__ grad, const float* __restrict__ sigma,
                                    scalar_t* __restrict__ grad_x, scalar_t* __restrict__ grad_raw,
                                    int64_t total, int64_t D, float sigma_data, float sigma_data_sq) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= total) return;
  float c_skip, c_out;
  skip_and_out(sigma[t / D], sigma_data, sigma_data_sq, &c_skip, &c_out);
  const float g = static_cast<float>(grad[t]);
  grad_x[t] = static_cast<scalar_t>(c_skip * g);
  grad_raw[t] = static_cast<scalar_t>(c_out * g);
}

static int64_t step_blocks(int64_t total) { return (total + kStepThreads - 1) / kStepThreads; }

template <typename scalar_t>
void launch_heun_forward(const scalar_t* x, const scalar_t* denoised, const scalar_t* denoised_next,
                         const scalar_t* noise, const float* sigma, const float* sigma_next,
                         const float* sigma_next_hat, scalar_t* out, int64_t N, int64_t D,
                         cudaStream_t stream) {
  if (N * D == 0) return;
  heun_forward_kernel<scalar_t><<<step_blocks(N * D), kStepThreads, 0, stream>>>(
      x, denoised, denoised_next, noise, sigma, sigma_next, sigma_next_hat, out, N * D, D);
}

template <typename scalar_t>
void launch_heun_backward(const scalar_t* grad, const float* sigma, const float* sigma_next,
                          const float* sigma_next_hat, scalar_t* grad_x, scalar_t* grad_denoised,
                          scalar_t* grad_denoised_next, scalar_t* grad_noise, int64_t N, int64_t D,
                          cudaStream_t stream) {
  if (N * D == 0) return;
  heun_backward_kernel<scalar_t><<<step_blocks(N * D), kStepThreads, 0, stream>>>(
      grad, sigma, sigma_next, sigma_next_hat, grad_x, grad_denoised, grad_denoised_next, grad_noise, N * D,
      D);
}

template <typename scalar_t>
void launch_edm_forward(const scalar_t* x, const scalar_t* raw, const float* sigma, scalar_t* out,
                        int64_t N, int64_t D, float sigma_data, float sigma_data_sq, cudaStream_t stream) {
  if (N * D == 0) return;
  edm_forward_kernel<scalar_t><<<step_blocks(N * D), kStepThreads, 0, stream>>>(
      x, raw, sigma, out, N * D, D, sigma_data, sigma_data_sq);
}

template <typename scalar_t>
void launch_edm_backward(const scalar_t* grad, const float* sigma, scalar_t* grad_x, scalar_t* grad_raw,
                         int64_t N, int64_t D, float sigma_data, float sigma_data_sq, cudaStream_t stream) {
  if (N * D == 0) return;
  edm_backward_kernel<scalar_t><<<step_blocks(N * D), kStepThreads, 0, stream>>>(
      grad, sigma, grad_x, grad_raw, N * D, D, sigma_data, sigma_data_sq);
}

#define INSTANTIATE(scalar_t)                                                                            \
  template void launch_heun_forward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,         \
                                              const scalar_t*, const float*, const float*, const float*, \
                                              scalar_t*, int64_t, int64_t, cudaStream_t);                \
  template void launch_heun_backward<scalar_t>(const scalar_t*, const float*, const float*, const float*, \
                                               scalar_t*, scalar_t*, scalar_t*, scalar_t*, int64_t,      \
                                               int64_t, cudaStream_t);                                   \
  template void launch_edm_forward<scalar_t>(const scalar_t*, const scalar_t*, const float*, scalar_t*,   \
                                             int64_t, int64_t, float, float, cudaStream_t);              \
  template void launch_edm_backward<scalar_t>(const scalar_t*, const float*, scalar_t*, scalar_t*,        \
                                              int64_t, int64_t, float, float, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
