// The parameterized hypercomplex multiplication layer (Zhang et al. 2021, "Beyond Fully-Connected Layers
// with Quaternions", arXiv:2102.08597, eq. 4; Grassucci et al. 2022, arXiv:2110.04176, eq. 4), forward
// and backward, the contract of course.neurons.phm.phm_linear, in float32 arithmetic whatever the storage
// type (float, __half, __nv_bfloat16): loads are converted to float32, only outputs are rounded.
//   W = sum_i A_i (x) F_i,  A [n, n, n],  F [n, I_n, O_n];  with x = [x_0 .. x_{n-1}] in blocks of I_n
//   and y in blocks of O_n:   y_p = sum_i sum_r A_i[r, p] (x_r F_i) = sum_i (sum_r A_i[r, p] x_r) F_i
//
// Design.
//   phm_product_kernel (the forward): a block is a tile of rows b x columns q of one output block p, a
//     thread kPhmRowsPerThread rows of one column (each F_i[k, q] read from shared memory serves them
//     all). For each rule i and chunk of kPhmChunk k, the block stages in shared memory the mixed inputs
//     m[b, k] = sum_r A_i[r, p] x[b, r I_n + k] (n multiply-adds each, once for the whole tile of
//     columns) and the tile F_i[k, q]; each thread then adds sum_k m[b, k] F_i[k, q].
//     That is B I O multiply-adds, the dense product's count, with the mixing's B I n on top, from the
//     n^3 + I O / n weights: W [I, O] never exists.
//   The gradient of x is the same product with every A_i and F_i transposed: grad_x = grad W^T and
//     W^T = sum_i A_i^T (x) F_i^T. The kernel reads A and F through strides, so the backward launches it
//     again with the strides swapped (no transposed copies).
//   phm_grad_weight_kernel: the float32 workspace grad_W = x^T grad [I, O], a tiled product (a thread
//     kPhmRowsPerThread rows of one column) summed over the rows b in row order, kPhmChunk rows at a
//     time staged in shared memory. The factors' gradients are contractions of it:
//     grad_A_i[r, p] = <grad_W block (r, p), F_i> and grad_F_i = sum_rp A_i[r, p] grad_W block (r, p),
//     I O n multiply-adds each. Forming grad_W costs the one B I O product; contracting x and grad
//     directly for each A_i[r, p] would cost n times that.
//   phm_grad_rules_kernel: a block per (i, r, p) walks the block's I_n O_n entries and adds its threads'
//     sums in shared memory in two fixed-order levels (groups of 16 threads, then the groups).
//   phm_grad_weights_kernel: a thread per (i, k, q), n^2 terms.
//   No atomics: every gradient is the same bits on every run. A NaN in x makes its row of y NaN and,
//   through grad_W, every entry of grad_A and grad_F that it touches, as the reference's autograd does.
// On sm_90 (ptxas -v, float32): the product 32 registers and 8 KB of shared memory, grad_W 40, the
// factors' kernels 30 and 32; no stack frame and no spills.
// Offsets are int64, so B I and B O may pass 2^31. Launch limits (checked by the host): the product puts
// the n column tiles of O_n on the grid's y (n ceil(O_n / 32) <= 65535), grad_W's column tiles too.
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "neurons_kernels.h"

namespace {

// Where A_i[r, p] and F_i[k, q] are: A[i * ai + r * ar + p * ap], F[i * fi + k * fk + q * fq].
struct Strides {
  int64_t ai, ar, ap, fi, fk, fq;
};

int pow2_at_least(int64_t v, int cap) {  // the least power of two >= v, at most cap
  int p = 1;
  while (p < v && p < cap) p *= 2;
  return p;
}

int min_int(int a, int b) { return a < b ? a : b; }

}  // namespace

// out [B, n Kout] = in [B, n Kin] (sum_i A_i (x) F_i), A_i [n, n] and F_i [Kin, Kout] read through `s`.
template <typename scalar_t>
__global__ void phm_product_kernel(const scalar_t* __restrict__ in, const scalar_t* __restrict__ A,
                                   const scalar_t* __restrict__ F, scalar_t* __restrict__ out, int64_t B,
                                   int64_t n, int64_t Kin, int64_t Kout, Strides s) {
  __shared__ float mixed_s[kPhmRows][kPhmChunk];
  __shared__ float F_s[kPhmChunk][kPhmLanes];
  const int lanes = blockDim.x, threads = lanes * blockDim.y, rows = blockDim.y * kPhmRowsPerThread;
  const int tid = threadIdx.y * lanes + threadIdx.x;
  const int64_t tiles = (Kout + lanes - 1) / lanes;
  const int64_t p = blockIdx.y / tiles, q0 = (blockIdx.y % tiles) * lanes;
  const int64_t row0 = blockIdx.x * static_cast<int64_t>(rows), q = q0 + threadIdx.x;
  const int64_t Iin = n * Kin;
  float acc[kPhmRowsPerThread] = {};  // rows threadIdx.y + j blockDim.y of the tile
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k0 = 0; k0 < Kin; k0 += kPhmChunk) {
      const int chunk = static_cast<int>(Kin - k0 < kPhmChunk ? Kin - k0 : kPhmChunk);
      for (int e = tid; e < rows * kPhmChunk; e += threads) {  // m[b, k] = sum_r A_i[r, p] x[b, r Kin + k]
        const int r = e / kPhmChunk, kk = e % kPhmChunk;
        if (row0 + r < B && kk < chunk) {
          const scalar_t* x_b = in + (row0 + r) * Iin + k0 + kk;
          float m = 0.0f;
          for (int64_t blk = 0; blk < n; ++blk)
            m += static_cast<float>(A[i * s.ai + blk * s.ar + p * s.ap]) * static_cast<float>(x_b[blk * Kin]);
          mixed_s[r][kk] = m;
        }
      }
      for (int e = tid; e < kPhmChunk * lanes; e += threads) {  // F_i[k, q] of the chunk and tile
        const int kk = e / lanes, l = e % lanes;
        if (kk < chunk && q0 + l < Kout)
          F_s[kk][l] = static_cast<float>(F[i * s.fi + (k0 + kk) * s.fk + (q0 + l) * s.fq]);
      }
      __syncthreads();
      if (q < Kout) {
        for (int kk = 0; kk < chunk; ++kk) {
          const float f = F_s[kk][threadIdx.x];
#pragma unroll
          for (int j = 0; j < kPhmRowsPerThread; ++j)
            if (row0 + threadIdx.y + j * blockDim.y < B)
              acc[j] += mixed_s[threadIdx.y + j * blockDim.y][kk] * f;
        }
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int j = 0; j < kPhmRowsPerThread; ++j) {
    const int64_t b = row0 + threadIdx.y + j * blockDim.y;
    if (b < B && q < Kout) out[b * n * Kout + p * Kout + q] = static_cast<scalar_t>(acc[j]);
  }
}

// grad_W [I, O] = x^T grad, float32, the rows b summed in order.
template <typename scalar_t>
__global__ void phm_grad_weight_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ grad,
                                       float* __restrict__ grad_W, int64_t B, int64_t I, int64_t O) {
  __shared__ float x_s[kPhmChunk][kPhmRows];
  __shared__ float grad_s[kPhmChunk][kPhmLanes];
  const int lanes = blockDim.x, threads = lanes * blockDim.y, rows = blockDim.y * kPhmRowsPerThread;
  const int tid = threadIdx.y * lanes + threadIdx.x;
  const int64_t m0 = blockIdx.x * static_cast<int64_t>(rows), c0 = blockIdx.y * static_cast<int64_t>(lanes);
  const int64_t c = c0 + threadIdx.x;
  float acc[kPhmRowsPerThread] = {};  // rows m0 + threadIdx.y + j blockDim.y of grad_W
  for (int64_t b0 = 0; b0 < B; b0 += kPhmChunk) {
    const int chunk = static_cast<int>(B - b0 < kPhmChunk ? B - b0 : kPhmChunk);
    for (int e = tid; e < kPhmChunk * rows; e += threads) {
      const int bb = e / rows, r = e % rows;
      if (bb < chunk && m0 + r < I) x_s[bb][r] = static_cast<float>(x[(b0 + bb) * I + m0 + r]);
    }
    for (int e = tid; e < kPhmChunk * lanes; e += threads) {
      const int bb = e / lanes, l = e % lanes;
      if (bb < chunk && c0 + l < O) grad_s[bb][l] = static_cast<float>(grad[(b0 + bb) * O + c0 + l]);
    }
    __syncthreads();
    if (c < O) {
      for (int bb = 0; bb < chunk; ++bb) {
        const float g = grad_s[bb][threadIdx.x];
#pragma unroll
        for (int j = 0; j < kPhmRowsPerThread; ++j)
          if (m0 + threadIdx.y + j * blockDim.y < I) acc[j] += x_s[bb][threadIdx.y + j * blockDim.y] * g;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < kPhmRowsPerThread; ++j) {
    const int64_t m = m0 + threadIdx.y + j * blockDim.y;
    if (m < I && c < O) grad_W[m * O + c] = acc[j];
  }
}

// grad_A[i, r, p] = sum_kq grad_W[r In + k, p On + q] F[i, k, q]: a block per (i, r, p).
template <typename scalar_t>
__global__ void phm_grad_rules_kernel(const scalar_t* __restrict__ F, const float* __restrict__ grad_W,
                                      scalar_t* __restrict__ grad_A, int64_t n, int64_t In, int64_t On) {
  __shared__ float sums_s[kPhmThreads];
  const int64_t i = blockIdx.x / (n * n), r = blockIdx.x / n % n, p = blockIdx.x % n;
  const int64_t O = n * On;
  float acc = 0.0f;
  for (int64_t e = threadIdx.x; e < In * On; e += blockDim.x) {
    const int64_t k = e / On, q = e % On;
    acc += grad_W[(r * In + k) * O + p * On + q] * static_cast<float>(F[(i * In + k) * On + q]);
  }
  sums_s[threadIdx.x] = acc;
  __syncthreads();
  constexpr int kGroup = 16;  // two fixed-order levels: groups of 16 threads, then the groups
  const int groups = (blockDim.x + kGroup - 1) / kGroup;
  float group_sum = 0.0f;
  if (threadIdx.x < groups)
    for (int t = threadIdx.x * kGroup; t < (threadIdx.x + 1) * kGroup && t < blockDim.x; ++t)
      group_sum += sums_s[t];
  __syncthreads();
  if (threadIdx.x < groups) sums_s[threadIdx.x] = group_sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int g = 0; g < groups; ++g) total += sums_s[g];
    grad_A[blockIdx.x] = static_cast<scalar_t>(total);
  }
}

// grad_F[i, k, q] = sum_rp A[i, r, p] grad_W[r In + k, p On + q]: a thread per (i, k, q).
template <typename scalar_t>
__global__ void phm_grad_weights_kernel(const scalar_t* __restrict__ A, const float* __restrict__ grad_W,
                                        scalar_t* __restrict__ grad_F, int64_t n, int64_t In, int64_t On) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (e >= n * In * On) return;
  const int64_t i = e / (In * On), k = e / On % In, q = e % On;
  const int64_t O = n * On;
  float acc = 0.0f;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t p = 0; p < n; ++p)
      acc += static_cast<float>(A[(i * n + r) * n + p]) * grad_W[(r * In + k) * O + p * On + q];
  grad_F[e] = static_cast<scalar_t>(acc);
}

namespace {

template <typename scalar_t>
void launch_product(const scalar_t* in, const scalar_t* A, const scalar_t* F, scalar_t* out, int64_t B,
                    int64_t n, int64_t Kin, int64_t Kout, Strides s, cudaStream_t stream) {
  if (B == 0 || Kout == 0) return;
  const int lanes = pow2_at_least(Kout, kPhmLanes);
  const int ys = pow2_at_least((B + kPhmRowsPerThread - 1) / kPhmRowsPerThread,
                               min_int(kPhmThreads / lanes, kPhmRows / kPhmRowsPerThread));
  const int64_t rows = int64_t{ys} * kPhmRowsPerThread;
  const dim3 grid((B + rows - 1) / rows, n * ((Kout + lanes - 1) / lanes));
  phm_product_kernel<scalar_t><<<grid, dim3(lanes, ys), 0, stream>>>(in, A, F, out, B, n, Kin, Kout, s);
}

}  // namespace

template <typename scalar_t>
void launch_phm_forward(const scalar_t* x, const scalar_t* A, const scalar_t* F, scalar_t* y, int64_t B,
                        int64_t n, int64_t In, int64_t On, cudaStream_t stream) {
  const Strides s{n * n, n, 1, In * On, On, 1};  // A_i[r, p], F_i[k, q]
  launch_product(x, A, F, y, B, n, In, On, s, stream);
}

template <typename scalar_t>
void launch_phm_backward_input(const scalar_t* grad, const scalar_t* A, const scalar_t* F, scalar_t* grad_x,
                               int64_t B, int64_t n, int64_t In, int64_t On, cudaStream_t stream) {
  const Strides s{n * n, 1, n, In * On, 1, On};  // A_i^T and F_i^T
  launch_product(grad, A, F, grad_x, B, n, On, In, s, stream);
}

template <typename scalar_t>
void launch_phm_grad_weight(const scalar_t* x, const scalar_t* grad, float* grad_W, int64_t B, int64_t I,
                            int64_t O, cudaStream_t stream) {
  if (I * O == 0) return;
  const int lanes = pow2_at_least(O, kPhmLanes);
  const int ys = pow2_at_least((I + kPhmRowsPerThread - 1) / kPhmRowsPerThread,
                               min_int(kPhmThreads / lanes, kPhmRows / kPhmRowsPerThread));
  const int64_t rows = int64_t{ys} * kPhmRowsPerThread;
  const dim3 grid((I + rows - 1) / rows, (O + lanes - 1) / lanes);
  phm_grad_weight_kernel<scalar_t><<<grid, dim3(lanes, ys), 0, stream>>>(x, grad, grad_W, B, I, O);
}

template <typename scalar_t>
void launch_phm_grad_rules(const scalar_t* F, const float* grad_W, scalar_t* grad_A, int64_t n, int64_t In,
                           int64_t On, cudaStream_t stream) {
  const int threads = pow2_at_least(In * On, kPhmThreads);
  phm_grad_rules_kernel<scalar_t><<<n * n * n, threads, 0, stream>>>(F, grad_W, grad_A, n, In, On);
}

template <typename scalar_t>
void launch_phm_grad_weights(const scalar_t* A, const float* grad_W, scalar_t* grad_F, int64_t n, int64_t In,
                             int64_t On, cudaStream_t stream) {
  const int64_t count = n * In * On;
  if (count == 0) return;
  const int threads = pow2_at_least(count, kPhmThreads);
  phm_grad_weights_kernel<scalar_t><<<(count + threads - 1) / threads, threads, 0, stream>>>(
      A, grad_W, grad_F, n, In, On);
}

#define INSTANTIATE(scalar_t)                                                                               \
  template void launch_phm_forward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*,  \
                                             int64_t, int64_t, int64_t, int64_t, cudaStream_t);             \
  template void launch_phm_backward_input<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,      \
                                                    scalar_t*, int64_t, int64_t, int64_t, int64_t,          \
                                                    cudaStream_t);                                          \
  template void launch_phm_grad_weight<scalar_t>(const scalar_t*, const scalar_t*, float*, int64_t, int64_t, \
                                                 int64_t, cudaStream_t);                                    \
  template void launch_phm_grad_rules<scalar_t>(const scalar_t*, const float*, scalar_t*, int64_t, int64_t, \
                                                int64_t, cudaStream_t);                                     \
  template void launch_phm_grad_weights<scalar_t>(const scalar_t*, const float*, scalar_t*, int64_t,       \
                                                  int64_t, int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
