// The loss of an MLP on a grid of parameter points (Li et al. 2018, arXiv:1712.09913, section 3, eq. 1
// on a whole grid: f(alpha_g, beta_g) = L(theta + alpha_g d1 + beta_g d2)), forward only, the contract
// of course.landscape.grid.grid_loss, in fp32 arithmetic whatever the storage type (float, bfloat16).
//
// The G weight copies W_g = W0 + alpha_g D1 + beta_g D2 are never materialised: each layer is one
// tiled matmul kernel that forms them tile by tile on chip.
//   perturbed_layer_kernel: a block takes kPointsPerBlock grid points, up to 64 examples
//     (kRowsPerThread per thread along threadIdx.y) and up to kMaxTileOut outputs (threadIdx.x). Over
//     the fan-in in steps of kTileK, each thread loads elements of W0, D1 and D2 from global memory once
//     and writes their combination for each of the block's grid points into shared memory (w_tile), so
//     a weight tile is read once per block whatever its number of grid points; the input tile goes to
//     shared memory beside it: the first layer reads x once for all the block's grid points (its input
//     is shared across g), the later ones each point's own activations. Every thread then accumulates
//     kPointsPerBlock x kRowsPerThread outputs of its column in float32 registers. The bias is combined
//     the same way (b0 + alpha_g e1 + beta_g e2) in the epilogue, where the ReLU is fused; it passes NaN
//     as torch's does (v < 0 ? 0 : v, never fmaxf).
//   cross_entropy_kernel: one block per grid point; each thread takes examples n, n + blockDim, ...,
//     with a stable logsumexp over the classes (shifted by the largest logit, by 0 where that is
//     infinite, as torch.logsumexp), and a tree sum in shared memory gives the mean.
// Activations and logits travel between the kernels as float32 [G, N, width] (the binding runs the
// grid points in chunks so that these buffers stay small); only the losses are rounded to the storage
// type, to nearest. A NaN example gives NaN losses, as the reference does.
// Launch: grid (points / kPointsPerBlock, examples / 64, outputs / 16), block (min(16, fan_out),
// min(16, ceil(N / 4))): a narrow last layer (C = 3) or a small batch does not launch idle threads.
// On sm_90 the layer kernel takes 43.5 KiB of static shared memory and no local memory (its loops over
// points and rows have constant bounds, so acc[][] stays in registers).
#include <cmath>
#include <cuda_bf16.h>

#include "landscape_kernels.h"

constexpr int kMaxTileN = kMaxThreadsN * kRowsPerThread;

template <typename scalar_t, typename in_t>
__global__ void perturbed_layer_kernel(const in_t* __restrict__ in, int64_t in_point_stride,
                                       const scalar_t* __restrict__ w0, const scalar_t* __restrict__ w1,
                                       const scalar_t* __restrict__ w2, const float* __restrict__ coords,
                                       float* __restrict__ out, int64_t G, int64_t N, int64_t fan_in,
                                       int64_t fan_out, bool relu) {
  __shared__ float w_tile[kPointsPerBlock][kMaxTileOut][kTileK + 1];  // W0 + a D1 + b D2 [point, j, k]
  __shared__ float in_tile[kPointsPerBlock][kMaxTileN][kTileK + 1];   // inputs [point, example, k]
  const int tile_out = static_cast<int>(blockDim.x);
  const int tile_n = static_cast<int>(blockDim.y) * kRowsPerThread;
  const int threads = static_cast<int>(blockDim.x * blockDim.y);
  const int tid = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
  const int64_t g0 = blockIdx.x * static_cast<int64_t>(kPointsPerBlock);
  const int64_t n0 = blockIdx.y * static_cast<int64_t>(tile_n);
  const int64_t j0 = blockIdx.z * static_cast<int64_t>(tile_out);
  const int points = G - g0 < kPointsPerBlock ? static_cast<int>(G - g0) : kPointsPerBlock;
  const bool shared_input = in_point_stride == 0;  // the first layer: x, the same for every point
  const int in_points = shared_input ? 1 : points;
  float alpha[kPointsPerBlock], beta[kPointsPerBlock];  // the block's grid points, in registers
  for (int p = 0; p < kPointsPerBlock; ++p) {
    alpha[p] = p < points ? coords[(g0 + p) * 2] : 0.0f;
    beta[p] = p < points ? coords[(g0 + p) * 2 + 1] : 0.0f;
  }
  float acc[kPointsPerBlock][kRowsPerThread] = {};
  for (int64_t k0 = 0; k0 < fan_in; k0 += kTileK) {
    // The weight tile [tile_out, kTileK]: W0, D1, D2 read once (k fastest: coalesced), combined per point.
    for (int e = tid; e < tile_out * kTileK; e += threads) {
      const int j = e / kTileK, k = e % kTileK;
      const int64_t row = j0 + j, col = k0 + k;
      float v0 = 0.0f, v1 = 0.0f, v2 = 0.0f;
      if (row < fan_out && col < fan_in) {
        const int64_t i = row * fan_in + col;
        v0 = static_cast<float>(w0[i]);
        v1 = static_cast<float>(w1[i]);
        v2 = static_cast<float>(w2[i]);
      }
      for (int p = 0; p < kPointsPerBlock; ++p)
        if (p < points) w_tile[p][j][k] = v0 + alpha[p] * v1 + beta[p] * v2;
    }
    // The input tile [in_points, tile_n, kTileK], zeros past N and past the fan-in.
    for (int e = tid; e < in_points * tile_n * kTileK; e += threads) {
      const int p = e / (tile_n * kTileK), r = e / kTileK % tile_n, k = e % kTileK;
      const int64_t n = n0 + r, col = k0 + k;
      in_tile[p][r][k] = n < N && col < fan_in
                             ? static_cast<float>(in[(g0 + p) * in_point_stride + n * fan_in + col])
                             : 0.0f;
    }
    __syncthreads();
    const int k_end = fan_in - k0 < kTileK ? static_cast<int>(fan_in - k0) : kTileK;
    for (int k = 0; k < k_end; ++k) {
      for (int p = 0; p < kPointsPerBlock; ++p) {  // constant bounds: acc stays in registers
        if (p < points) {
          const float w = w_tile[p][threadIdx.x][k];
          const int q = shared_input ? 0 : p;
          for (int r = 0; r < kRowsPerThread; ++r)
            acc[p][r] += in_tile[q][threadIdx.y + r * blockDim.y][k] * w;
        }
      }
    }
    __syncthreads();
  }
  const int64_t j = j0 + threadIdx.x;
  if (j >= fan_out) return;
  const int64_t bias = fan_out * fan_in + j;  // the bias follows W in theta
  const float e0 = static_cast<float>(w0[bias]), e1 = static_cast<float>(w1[bias]);
  const float e2 = static_cast<float>(w2[bias]);
  for (int p = 0; p < kPointsPerBlock; ++p) {
    const float b = e0 + alpha[p] * e1 + beta[p] * e2;
    for (int r = 0; r < kRowsPerThread; ++r) {
      const int64_t n = n0 + threadIdx.y + r * blockDim.y;
      if (p < points && n < N) {
        float v = acc[p][r] + b;
        if (relu) v = v < 0.0f ? 0.0f : v;  // NaN passes
        out[((g0 + p) * N + n) * fan_out + j] = v;
      }
    }
  }
}

template <typename scalar_t>
__global__ void cross_entropy_kernel(const float* __restrict__ logits, const int64_t* __restrict__ labels,
                                     scalar_t* __restrict__ losses, int64_t N, int64_t C) {
  __shared__ float partial[kLossThreads];
  const int64_t g = blockIdx.x;
  float sum = 0.0f;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const float* z = logits + (g * N + n) * C;
    float m = -INFINITY;
    for (int64_t c = 0; c < C; ++c) m = fmaxf(m, z[c]);  // a NaN logit gives a NaN sum below
    const float shift = fabsf(m) == INFINITY ? 0.0f : m;
    float s = 0.0f;
    for (int64_t c = 0; c < C; ++c) s += expf(z[c] - shift);
    sum += logf(s) + shift - z[labels[n]];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {  // blockDim.x is a power of 2
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) losses[g] = static_cast<scalar_t>(partial[0] / static_cast<float>(N));
}

template <typename scalar_t, typename in_t>
void launch_perturbed_layer(const in_t* in, int64_t in_point_stride, const scalar_t* w0, const scalar_t* w1,
                            const scalar_t* w2, const float* coords, float* out, int64_t G, int64_t N,
                            int64_t fan_in, int64_t fan_out, bool relu, cudaStream_t stream) {
  if (G == 0 || N == 0 || fan_out == 0) return;
  const int tile_out = fan_out < kMaxTileOut ? static_cast<int>(fan_out) : kMaxTileOut;
  const int64_t row_threads = (N + kRowsPerThread - 1) / kRowsPerThread;
  const int threads_n = row_threads < kMaxThreadsN ? static_cast<int>(row_threads) : kMaxThreadsN;
  const int64_t tile_n = threads_n * static_cast<int64_t>(kRowsPerThread);
  const dim3 grid((G + kPointsPerBlock - 1) / kPointsPerBlock, (N + tile_n - 1) / tile_n,
                  (fan_out + tile_out - 1) / tile_out);
  const dim3 block(tile_out, threads_n);
  perturbed_layer_kernel<scalar_t, in_t><<<grid, block, 0, stream>>>(in, in_point_stride, w0, w1, w2, coords,
                                                                      out, G, N, fan_in, fan_out, relu);
}

template <typename scalar_t>
void launch_cross_entropy(const float* logits, const int64_t* labels, scalar_t* losses, int64_t G,
                          int64_t N, int64_t C, cudaStream_t stream) {
  if (G == 0) return;
  int threads = 1;  // a power of 2 for the tree sum, no more than the examples need
  while (threads < kLossThreads && threads < N) threads *= 2;
  cross_entropy_kernel<scalar_t><<<dim3(G), dim3(threads), 0, stream>>>(logits, labels, losses, N, C);
}

#define INSTANTIATE(scalar_t)                                                                           \
  template void launch_perturbed_layer<scalar_t, scalar_t>(                                             \
      const scalar_t*, int64_t, const scalar_t*, const scalar_t*, const scalar_t*, const float*, float*, \
      int64_t, int64_t, int64_t, int64_t, bool, cudaStream_t);                                          \
  template void launch_cross_entropy<scalar_t>(const float*, const int64_t*, scalar_t*, int64_t, int64_t, \
                                               int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
// Later layers read the float32 activations of the one before.
template void launch_perturbed_layer<__nv_bfloat16, float>(const float*, int64_t, const __nv_bfloat16*,
                                                           const __nv_bfloat16*, const __nv_bfloat16*,
                                                           const float*, float*, int64_t, int64_t,
                                                           int64_t, int64_t, bool, cudaStream_t);
