// The B-spline Kolmogorov-Arnold layer (Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks",
// arXiv:2404.19756, eqs. 2.10-2.12) with cubic splines on a uniform grid, forward and backward, the
// contract of course.neurons.kan.kan_linear, in float32 arithmetic whatever the storage type (float,
// __half, __nv_bfloat16): loads are converted to float32 and only the outputs are rounded, to nearest.
//   y[b, o] = sum_i base[i, o] silu(x[b, i]) + sum_i sum_c coef[i, c, o] B_c(x[b, i])
// The grid has G intervals of width h = 2R / G over [-R, R], extended by 3 knots a side; spline c
// (c = 0..G+2) is centred on the knot (c - 1) h - R. With u = (x + R) / h, f = floor(u) and t = u - f,
// only the splines c = f..f+3 are nonzero at x, with the uniform cubic weights
//   (1 - t)^3 / 6,  (4 - 6 t^2 + 3 t^3) / 6,  (4 - 6 (1 - t)^2 + 3 (1 - t)^3) / 6,  t^3 / 6
// (course.neurons.kan's closed form N(|u - (c - 1)|) at the four splines), and their x-derivatives
// -(1 - t)^2 / 2h, (-2 t + 3 t^2 / 2) / h, (2 (1 - t) - 3 (1 - t)^2 / 2) / h, t^2 / 2h. Past the extended
// knots (u <= -3 or u >= G + 3) every weight is 0. A window [start, start + 3] inside [0, G + 2] always
// holds the nonzero splines (start = f clamped to [0, G - 1]); the weights are shifted into it.
//
// Design: the [B, I, G + 3] basis never exists; each (b, i) gives five numbers (silu, and four
// weights at a start index), computed once into shared memory and used by every output of the block.
//   kan_forward_kernel: a block is a tile of rows b x outputs o (up to kKanRows x kKanLanes), a thread
//     an output y[b, o]. For each chunk of kKanChunk inputs the block stages silu(x[b, i]), start and the
//     4 weights of its rows in shared memory; each thread then adds silu base[i, o] + 4 weights times
//     coef[i, start + q, o]: 5 multiply-adds an input instead of the G + 4 of the dense basis product,
//     and the warp's 32 consecutive o read 128-byte lines of base and coef.
//   kan_backward_input_kernel: a group of up to kKanLanes threads per (b, i) walks the outputs o,
//     g[b, o] (silu'(x) base[i, o] + sum_q B'_q coef[i, start + q, o]); lane 0 adds the group's lanes in
//     lane order from shared memory (one barrier; the emulator has no warp shuffles): grad_x[b, i].
//   kan_backward_params_kernel: a block is one input i, a tile of outputs o and of coefficient rows c
//     (c = G + 3 is base's row). It walks the rows b in chunks of kKanChunk, staging silu, start and
//     the weights of x[b, i] and the tile of grad[b, o]; thread (c, o) adds its weight times grad[b, o]
//     in row order: grad_coef[i, c, o] and grad_base[i, o], float32 sums, no atomics (deterministic).
//     It multiplies zeros for the c outside a row's window: G + 4 multiply-adds a (b, i, o), as many
//     as the dense product, in exchange for no scatter. Its blocks hold the G + 4 rows exactly (up to
//     2 kKanThreads threads; 288 for G = 5 and 32 lanes), so no thread of a tile idles.
//   A NaN x[b, i] makes its weights NaN: y's row, grad_x[b, i], and grad_base[i] and every
//     grad_coef[i, c] are NaN, as the reference's autograd gives them (its basis is NaN at every c).
// On sm_90 (ptxas -v, float32): forward 32 registers and 24 KB of shared memory, grad_x 32, the
// parameter gradients 39; no stack frame and no spills.
// Block shapes follow the sizes (fewer lanes for few outputs), so small layers launch small blocks.
// Offsets are int64, so B I O may pass 2^31. Launch limits (checked by the host): the forward puts the
// output tiles on the grid's y (ceil(O / 32) <= 65535), the parameter kernel the coefficient-row tiles.
#include <cmath>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "neurons_kernels.h"

namespace {

// The grid of the splines: u = (x + R) * inv_h.
struct Grid {
  float range, inv_h;
  int G;
};

// The window [start, start + 3] of x's nonzero splines and their weights (derivative = false) or their
// x-derivatives (derivative = true). Returns false for a NaN x (weights NaN).
__device__ __forceinline__ bool cubic_weights(float v, const Grid& grid, bool derivative, int& start,
                                              float w[4]) {
  const float u = (v + grid.range) * grid.inv_h;
  start = 0;
  if (u != u) {  // NaN
    for (int q = 0; q < 4; ++q) w[q] = u;
    return false;
  }
  for (int q = 0; q < 4; ++q) w[q] = 0.0f;
  if (!(u > -3.0f && u < static_cast<float>(grid.G + 3))) return true;  // past the extended knots
  const float f = floorf(u), t = u - f, s = 1.0f - t;
  float local[4];  // the weights of the splines f..f+3
  if (derivative) {
    local[0] = -0.5f * s * s;
    local[1] = t * (-2.0f + 1.5f * t);
    local[2] = s * (2.0f - 1.5f * s);
    local[3] = 0.5f * t * t;
    for (int q = 0; q < 4; ++q) local[q] *= grid.inv_h;
  } else {
    local[0] = s * s * s * (1.0f / 6.0f);
    local[1] = (4.0f - 6.0f * t * t + 3.0f * t * t * t) * (1.0f / 6.0f);
    local[2] = (4.0f - 6.0f * s * s + 3.0f * s * s * s) * (1.0f / 6.0f);
    local[3] = t * t * t * (1.0f / 6.0f);
  }
  const int first = static_cast<int>(f);
  start = first < 0 ? 0 : (first > grid.G - 1 ? grid.G - 1 : first);
  const int shift = start - first;  // window slot q holds spline start + q = first + shift + q
#pragma unroll
  for (int q = 0; q < 4; ++q) {  // selects, not an indexed store: w stays in registers
    const int l = shift + q;
    w[q] = l == 0 ? local[0] : l == 1 ? local[1] : l == 2 ? local[2] : l == 3 ? local[3] : 0.0f;
  }
  return true;
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

Grid make_grid(int64_t G, float grid_range) {
  return Grid{grid_range, static_cast<float>(G) / (2.0f * grid_range), static_cast<int>(G)};
}

int pow2_at_least(int64_t v, int cap) {  // the least power of two >= v, at most cap
  int p = 1;
  while (p < v && p < cap) p *= 2;
  return p;
}

}  // namespace

template <typename scalar_t>
__global__ void kan_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ base,
                                   const scalar_t* __restrict__ coef, scalar_t* __restrict__ y, int64_t B,
                                   int64_t I, int64_t O, Grid grid) {
  __shared__ float silu_s[kKanRows][kKanChunk];
  __shared__ float weight_s[kKanRows][kKanChunk][4];
  __shared__ int start_s[kKanRows][kKanChunk];
  const int rows = blockDim.y, threads = blockDim.x * blockDim.y;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int64_t row0 = blockIdx.x * static_cast<int64_t>(rows);
  const int64_t b = row0 + threadIdx.y, o = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t C = grid.G + 3;
  float acc = 0.0f;
  for (int64_t i0 = 0; i0 < I; i0 += kKanChunk) {
    const int chunk = static_cast<int>(I - i0 < kKanChunk ? I - i0 : kKanChunk);
    for (int e = tid; e < rows * kKanChunk; e += threads) {  // stage the chunk's (b, i) weights
      const int r = e / kKanChunk, ii = e % kKanChunk;
      if (row0 + r < B && ii < chunk) {
        const float v = static_cast<float>(x[(row0 + r) * I + i0 + ii]);
        silu_s[r][ii] = v * sigmoid(v);
        cubic_weights(v, grid, false, start_s[r][ii], weight_s[r][ii]);
      }
    }
    __syncthreads();
    if (b < B && o < O) {
      const int r = threadIdx.y;
      for (int ii = 0; ii < chunk; ++ii) {
        const int64_t i = i0 + ii;
        const scalar_t* c = coef + (i * C + start_s[r][ii]) * O + o;
        acc += silu_s[r][ii] * static_cast<float>(base[i * O + o]);
        for (int q = 0; q < 4; ++q) acc += weight_s[r][ii][q] * static_cast<float>(c[q * O]);
      }
    }
    __syncthreads();
  }
  if (b < B && o < O) y[b * O + o] = static_cast<scalar_t>(acc);
}

template <typename scalar_t>
__global__ void kan_backward_input_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ base,
                                          const scalar_t* __restrict__ coef,
                                          const scalar_t* __restrict__ grad, scalar_t* __restrict__ grad_x,
                                          int64_t B, int64_t I, int64_t O, Grid grid) {
  __shared__ float lanes_s[kKanThreads];
  const int lanes = blockDim.x, lane = threadIdx.x;
  const int64_t pair = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y;  // b I + i
  const int64_t C = grid.G + 3;
  float acc = 0.0f;
  if (pair < B * I) {
    const int64_t b = pair / I, i = pair % I;
    const float v = static_cast<float>(x[pair]);
    const float sig = sigmoid(v), dsilu = sig * (1.0f + v * (1.0f - sig));
    int start;
    float dw[4];
    cubic_weights(v, grid, true, start, dw);
    const scalar_t* c = coef + (i * C + start) * O;
    for (int64_t o = lane; o < O; o += lanes) {
      float d = dsilu * static_cast<float>(base[i * O + o]);
      for (int q = 0; q < 4; ++q) d += dw[q] * static_cast<float>(c[q * O + o]);
      acc += static_cast<float>(grad[b * O + o]) * d;
    }
  }
  float* mine = lanes_s + threadIdx.y * lanes;
  mine[lane] = acc;
  __syncthreads();
  if (lane == 0 && pair < B * I) {  // the group's lanes added in lane order (one barrier, no shuffles)
    float total = 0.0f;
    for (int l = 0; l < lanes; ++l) total += mine[l];
    grad_x[pair] = static_cast<scalar_t>(total);
  }
}

template <typename scalar_t>
__global__ void kan_backward_params_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ grad,
                                           scalar_t* __restrict__ grad_base, scalar_t* __restrict__ grad_coef,
                                           int64_t B, int64_t I, int64_t O, Grid grid) {
  __shared__ float silu_s[kKanChunk];
  __shared__ float weight_s[kKanChunk][4];
  __shared__ int start_s[kKanChunk];
  __shared__ bool nan_s[kKanChunk];
  __shared__ float grad_s[kKanChunk][kKanLanes];
  const int lanes = blockDim.x, threads = blockDim.x * blockDim.y;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int64_t tiles = (O + lanes - 1) / lanes;
  const int64_t i = blockIdx.x / tiles, o0 = (blockIdx.x % tiles) * lanes, o = o0 + threadIdx.x;
  const int C = grid.G + 3;
  const int c = blockIdx.y * blockDim.y + threadIdx.y;  // C: base's row
  float acc = 0.0f;
  for (int64_t b0 = 0; b0 < B; b0 += kKanChunk) {
    const int chunk = static_cast<int>(B - b0 < kKanChunk ? B - b0 : kKanChunk);
    for (int e = tid; e < kKanChunk * lanes; e += threads) {  // stage the rows' weights and grad's tile
      const int r = e / lanes, l = e % lanes;
      if (r >= chunk) continue;
      if (o0 + l < O) grad_s[r][l] = static_cast<float>(grad[(b0 + r) * O + o0 + l]);
      if (l == 0) {
        const float v = static_cast<float>(x[(b0 + r) * I + i]);
        silu_s[r] = v * sigmoid(v);
        nan_s[r] = !cubic_weights(v, grid, false, start_s[r], weight_s[r]);
      }
    }
    __syncthreads();
    if (o < O && c <= C) {
      for (int r = 0; r < chunk; ++r) {
        float w;
        if (c == C) {
          w = silu_s[r];
        } else if (nan_s[r]) {
          w = weight_s[r][0];  // NaN: the reference's basis is NaN at every c
        } else {
          const int q = c - start_s[r];
          w = q >= 0 && q < 4 ? weight_s[r][q] : 0.0f;
        }
        acc += w * grad_s[r][threadIdx.x];
      }
    }
    __syncthreads();
  }
  if (o < O && c < C) grad_coef[(i * C + c) * O + o] = static_cast<scalar_t>(acc);
  if (o < O && c == C) grad_base[i * O + o] = static_cast<scalar_t>(acc);
}

template <typename scalar_t>
void launch_kan_forward(const scalar_t* x, const scalar_t* base, const scalar_t* coef, scalar_t* y,
                        int64_t B, int64_t I, int64_t O, int64_t G, float grid_range, cudaStream_t stream) {
  if (B == 0 || O == 0) return;
  const int lanes = pow2_at_least(O, kKanLanes);
  const int rows = pow2_at_least(B, kKanThreads / lanes < kKanRows ? kKanThreads / lanes : kKanRows);
  const dim3 grid((B + rows - 1) / rows, (O + lanes - 1) / lanes);
  kan_forward_kernel<scalar_t><<<grid, dim3(lanes, rows), 0, stream>>>(x, base, coef, y, B, I, O,
                                                                      make_grid(G, grid_range));
}

template <typename scalar_t>
void launch_kan_backward_input(const scalar_t* x, const scalar_t* base, const scalar_t* coef,
                               const scalar_t* grad, scalar_t* grad_x, int64_t B, int64_t I, int64_t O,
                               int64_t G, float grid_range, cudaStream_t stream) {
  if (B * I == 0) return;
  const int lanes = pow2_at_least(O, kKanLanes);
  const int groups = pow2_at_least(B * I, kKanThreads / lanes);
  kan_backward_input_kernel<scalar_t><<<(B * I + groups - 1) / groups, dim3(lanes, groups), 0, stream>>>(
      x, base, coef, grad, grad_x, B, I, O, make_grid(G, grid_range));
}

template <typename scalar_t>
void launch_kan_backward_params(const scalar_t* x, const scalar_t* grad, scalar_t* grad_base,
                                scalar_t* grad_coef, int64_t B, int64_t I, int64_t O, int64_t G,
                                float grid_range, cudaStream_t stream) {
  if (I * O == 0) return;
  const int lanes = pow2_at_least(O, kKanLanes);
  // coefficient rows c = 0..G+3, as many as there are (no tree here: any count), up to 2 kKanThreads threads
  const int64_t most = 2 * kKanThreads / lanes;
  const int rows = static_cast<int>(G + 4 < most ? G + 4 : most);
  const dim3 grid(I * ((O + lanes - 1) / lanes), (G + 4 + rows - 1) / rows);
  kan_backward_params_kernel<scalar_t><<<grid, dim3(lanes, rows), 0, stream>>>(
      x, grad, grad_base, grad_coef, B, I, O, make_grid(G, grid_range));
}

#define INSTANTIATE(scalar_t)                                                                              \
  template void launch_kan_forward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*, scalar_t*, \
                                             int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);     \
  template void launch_kan_backward_input<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,     \
                                                    const scalar_t*, scalar_t*, int64_t, int64_t, int64_t, \
                                                    int64_t, float, cudaStream_t);                         \
  template void launch_kan_backward_params<scalar_t>(const scalar_t*, const scalar_t*, scalar_t*,          \
                                                     scalar_t*, int64_t, int64_t, int64_t, int64_t, float, \
                                                     cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__half)
INSTANTIATE(__nv_bfloat16)
