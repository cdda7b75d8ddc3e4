// The safe rational activation R(x) = P(x) / (1 + |S(x)|) (Molina et al. 2020, "Padé Activation Units",
// arXiv:1907.06732, eq. 2 and its safe form; Delfosse et al. 2024, arXiv:2102.09407, section 2), forward
// and backward, the contract of course.neurons.rational.rational, in float32 arithmetic whatever the
// storage type (float, __half, __nv_bfloat16): loads are converted to float32 and only the outputs are
// rounded to the storage type, to nearest.
//   P(x) = a_0 + a_1 x + ... + a_m x^m,  S(x) = x T(x),  T(x) = b_1 + b_2 x + ... + b_n x^(n-1)
// both by Horner's rule, one multiply-add a degree. With Q = 1 + |S| and s = sign(S):
//   dR/dx = (P' Q - P s S') / Q^2,   dR/da_k = x^k / Q,   dR/db_j = -P s x^j / Q^2.
//
// Design.
//   rational_forward_kernel: a grid-stride walk, kRationalItems elements a thread (fewer threads and
//     smaller blocks for small tensors), the m + 1 + n coefficients staged in shared memory once a
//     block; P and T by Horner in registers: a read and a write an element, the bandwidth bound of an
//     elementwise op.
//   rational_backward_kernel: the same walk, P, P', T, T' by Horner's rule together; grad_x is written
//     per element, and each thread accumulates its elements' terms of the m + 1 + n coefficient
//     gradients in registers (kMaxNumerator + kMaxDenominator floats, fully unrolled loops). At the end
//     the block's threads put their sums in shared memory [coefficient][thread] and thread c adds
//     coefficient c's column in thread order: one float32 partial sum per block and coefficient,
//     [blocks, m + 1 + n]. The grid is capped at kRationalMaxBlocks blocks (each thread strides over
//     E / (256 * 1024) elements on the large cases, 256 on the 2^26 of the benchmark), so the caller's
//     sum over the blocks is small; it runs in a fixed order. No atomics: the gradients are the same
//     bits on every run.
//   sign(S) is that of torch's abs backward: 0 at S = 0. A NaN x makes its own outputs NaN and, through
//     the sums, every coefficient's gradient, as the reference's autograd does.
// On sm_90 (ptxas -v, float32): the forward takes 31 registers, the backward 71 and 32.9 KB of shared
// memory (the [32][256] terms), no stack frame and no spills.
// Offsets are int64, so E may pass 2^31.
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "neurons_kernels.h"

namespace {

constexpr int kMaxCoefficients = kMaxNumerator + kMaxDenominator;

// Loads a_0..a_m then b_1..b_n into shared memory as float32; every thread must call it (a barrier).
template <typename scalar_t>
__device__ void stage_coefficients(const scalar_t* numerator, const scalar_t* denominator, int m, int n,
                                   float* coefficients) {
  for (int c = threadIdx.x; c < m + 1 + n; c += blockDim.x)
    coefficients[c] = static_cast<float>(c <= m ? numerator[c] : denominator[c - m - 1]);
  __syncthreads();
}

}  // namespace

template <typename scalar_t>
__global__ void rational_forward_kernel(const scalar_t* __restrict__ x,
                                        const scalar_t* __restrict__ numerator,
                                        const scalar_t* __restrict__ denominator, scalar_t* __restrict__ y,
                                        int64_t E, int m, int n) {
  __shared__ float coefficients[kMaxCoefficients];
  stage_coefficients(numerator, denominator, m, n, coefficients);
  const float* a = coefficients;
  const float* b = coefficients + m + 1;  // b[j - 1] = b_j
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < E; e += stride) {
    const float v = static_cast<float>(x[e]);
    float p = a[m];
    for (int k = m - 1; k >= 0; --k) p = p * v + a[k];
    float q = 1.0f;
    if (n > 0) {
      float t = b[n - 1];
      for (int j = n - 2; j >= 0; --j) t = t * v + b[j];
      q = 1.0f + fabsf(v * t);
    }
    y[e] = static_cast<scalar_t>(p / q);
  }
}

template <typename scalar_t>
__global__ void rational_backward_kernel(const scalar_t* __restrict__ x,
                                         const scalar_t* __restrict__ numerator,
                                         const scalar_t* __restrict__ denominator,
                                         const scalar_t* __restrict__ grad, scalar_t* __restrict__ grad_x,
                                         float* __restrict__ partial, int64_t E, int m, int n) {
  __shared__ float coefficients[kMaxCoefficients];
  __shared__ float terms[kMaxCoefficients][kRationalThreads];  // [coefficient][thread]
  stage_coefficients(numerator, denominator, m, n, coefficients);
  const float* a = coefficients;
  const float* b = coefficients + m + 1;
  float sum_a[kMaxNumerator], sum_b[kMaxDenominator];  // this thread's sums of dR/da_k and dR/db_j terms
#pragma unroll
  for (int k = 0; k < kMaxNumerator; ++k) sum_a[k] = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxDenominator; ++j) sum_b[j] = 0.0f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < E; e += stride) {
    const float v = static_cast<float>(x[e]), g = static_cast<float>(grad[e]);
    float p = a[m], dp = 0.0f;  // P and P' by Horner's rule
    for (int k = m - 1; k >= 0; --k) {
      dp = dp * v + p;
      p = p * v + a[k];
    }
    float s_value = 0.0f, ds = 0.0f;  // S = x T and S' = T + x T'
    if (n > 0) {
      float t = b[n - 1], dt = 0.0f;
      for (int j = n - 2; j >= 0; --j) {
        dt = dt * v + t;
        t = t * v + b[j];
      }
      s_value = v * t;
      ds = t + v * dt;
    }
    const float sign =  // NaN stays NaN
        s_value > 0.0f ? 1.0f : (s_value < 0.0f ? -1.0f : (s_value == 0.0f ? 0.0f : s_value));
    const float inv_q = 1.0f / (1.0f + fabsf(s_value));
    grad_x[e] = static_cast<scalar_t>(g * (dp - p * sign * ds * inv_q) * inv_q);
    const float g_a = g * inv_q;                       // times x^k: the term of dR/da_k
    const float g_b = -g * p * sign * inv_q * inv_q;   // times x^j: the term of dR/db_j
    float power = 1.0f;                                // x^k
#pragma unroll
    for (int k = 0; k < kMaxNumerator || k <= kMaxDenominator; ++k) {
      if (k < kMaxNumerator && k <= m) sum_a[k] += g_a * power;
      if (k >= 1 && k <= kMaxDenominator && k <= n) sum_b[k - 1] += g_b * power;
      power *= v;
    }
  }
  const int count = m + 1 + n;
#pragma unroll
  for (int k = 0; k < kMaxNumerator; ++k)
    if (k <= m) terms[k][threadIdx.x] = sum_a[k];
#pragma unroll
  for (int j = 0; j < kMaxDenominator; ++j)
    if (j < n) terms[m + 1 + j][threadIdx.x] = sum_b[j];
  __syncthreads();
  for (int c = threadIdx.x; c < count; c += blockDim.x) {  // coefficient c's sum, in thread order
    float total = 0.0f;
    for (int t = 0; t < static_cast<int>(blockDim.x); ++t) total += terms[c][t];
    partial[blockIdx.x * static_cast<int64_t>(count) + c] = total;
  }
}

namespace {

int pow2_at_least(int64_t v, int cap) {  // the least power of two >= v, at most cap
  int p = 1;
  while (p < v && p < cap) p *= 2;
  return p;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

int rational_threads(int64_t E) { return pow2_at_least(ceil_div(E, kRationalItems), kRationalThreads); }

int64_t rational_backward_blocks(int64_t E) {
  const int64_t blocks = ceil_div(E, int64_t{kRationalThreads} * kRationalItems);
  return blocks < kRationalMaxBlocks ? blocks : kRationalMaxBlocks;
}

template <typename scalar_t>
void launch_rational_forward(const scalar_t* x, const scalar_t* numerator, const scalar_t* denominator,
                             scalar_t* y, int64_t E, int m, int n, cudaStream_t stream) {
  if (E == 0) return;
  const int threads = rational_threads(E);
  int64_t blocks = ceil_div(E, int64_t{threads} * kRationalItems);
  if (blocks > (int64_t{1} << 30)) blocks = int64_t{1} << 30;  // the grid-stride loop covers the rest
  rational_forward_kernel<scalar_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      x, numerator, denominator, y, E, m, n);
}

template <typename scalar_t>
void launch_rational_backward(const scalar_t* x, const scalar_t* numerator, const scalar_t* denominator,
                              const scalar_t* grad, scalar_t* grad_x, float* partial, int64_t E, int m,
                              int n, cudaStream_t stream) {
  if (E == 0) return;
  rational_backward_kernel<scalar_t>
      <<<static_cast<unsigned>(rational_backward_blocks(E)), rational_threads(E), 0, stream>>>(
          x, numerator, denominator, grad, grad_x, partial, E, m, n);
}

#define INSTANTIATE(scalar_t)                                                                             \
  template void launch_rational_forward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,     \
                                                  scalar_t*, int64_t, int, int, cudaStream_t);            \
  template void launch_rational_backward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,    \
                                                   const scalar_t*, scalar_t*, float*, int64_t, int, int, \
                                                   cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
