// The diagonal linear scan and Mamba's selective scan, forward and backward, the contracts of
// course.ssm.scan.scan and course.ssm.selective.selective_scan, in float32 arithmetic whatever the
// storage type (float, bfloat16): loads are converted to float32, the state stays float32, and only the
// outputs are rounded to the storage type, to nearest.
//
// Design: one thread per channel (b, d) walks the T steps in order, its state in registers.
//   The recurrence h_t = a_t h_{t-1} + x_t (Martin and Cundy 2018, arXiv:1709.04057) is associative,
//   (a1, x1) o (a2, x2) = (a2 a1, a2 x1 + x2), so a block could also scan chunks of T in parallel and
//   combine the chunks' carries; we take the sequential walk per channel instead because (1) the
//   layer shapes it serves have B D = 8192 channels and more, enough threads to keep the memory system
//   busy, each step reading a_t and x_t of 32 consecutive channels per warp (coalesced, [B, T, D] with
//   d fastest); (2) it does T combines per channel, not the 2T and the extra pass over the inputs of a
//   chunked scan; (3) it needs no warp shuffles and no barriers in the scan, so it runs unchanged on
//   the project's CPU emulator, and its rounding is the step loop's, one fused a h + x per step. For
//   short batches of few channels (B D below some 10^4) the chunked scan would fill the GPU better.
//
//   scan_forward_kernel:  thread (b, d): h = a_t h + x_t, h_t stored (and its float32 copy for the
//     backward when the inputs are bfloat16; in float32 the output is that copy).
//   scan_backward_kernel: the reverse scan g_t = dh_t + a_{t+1} g_{t+1} (g_T+1 = 0), dx_t = g_t,
//     da_t = g_t h_{t-1} (h_{-1} = 0), reading the forward's float32 states. A NaN in x makes h, and
//     so da, NaN from there on, and leaves dx finite, as the reference's autograd does.
//
//   selective_forward_kernel (Gu and Dao 2023, arXiv:2312.00752, section 3, Algorithm 2): a block is
//     kChannels channels d of one batch row b, a thread one channel, its N <= kMaxState states in
//     registers; each step computes exp(delta_t A[d, n]) and delta_t B[b, t, n] u_t on chip and writes
//     only y_t = C_t . h_t + D u_t: the [B, T, D, N] states never leave the chip. For the backward it
//     stores the state entering every chunk of kChunk steps (checkpoints [B, chunks, N, D], d fastest
//     so the stores are coalesced): N / kChunk floats a step and channel.
//   selective_backward_kernel: the same threads walk the chunks from the last; each recomputes its
//     chunk's states from the checkpoint into a per-thread array [kChunk][kMaxState] (local memory),
//     then walks the chunk backwards with g_t = dy_t C_t + exp(delta_{t+1} A) g_{t+1} (per state n):
//       du_t = D dy_t + sum_n g_tn delta_t B_tn,
//       ddelta_t = sum_n g_tn (A_n exp(delta_t A_n) h_{t-1,n} + B_tn u_t),
//       dA_n += g_tn h_{t-1,n} exp(delta_t A_n) delta_t,    dD += dy_t u_t     (in registers),
//       dB_tn = sum_d g_tn delta_t u_t,   dC_tn = sum_d dy_t h_tn             (over channels).
//     The sums over channels are deterministic: every step, each thread puts its 2N terms in shared
//     memory and 2N threads add the block's channels in order, one partial per block
//     [B, T, blocks, N]; the caller sums the blocks, and dA [B, D, N] and dD [B, D] over the batch, in
//     float32, in a fixed order. No atomics.
// On sm_90 (ptxas -v): the scan kernels take 32 registers; the selective forward 128, its backward 144
// and a 1088-byte stack frame (the recomputed chunk hs[kChunk][kMaxState], in cached local memory), with
// no spills.
// Offsets are int64, so B T D may pass 2^31. Launch limits: the selective kernels put the batch on the
// grid's y (B <= 65535, checked by the host).
#include <cmath>
#include <cuda_bf16.h>

#include "ssm_kernels.h"

template <typename scalar_t>
__global__ void scan_forward_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ x,
                                    scalar_t* __restrict__ h, float* __restrict__ states, int64_t B,
                                    int64_t T, int64_t D) {
  const int64_t channel = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // b D + d
  if (channel >= B * D) return;
  const int64_t b = channel / D, d = channel % D;
  int64_t i = b * T * D + d;
  float state = 0.0f;
  for (int64_t t = 0; t < T; ++t, i += D) {
    state = static_cast<float>(a[i]) * state + static_cast<float>(x[i]);
    h[i] = static_cast<scalar_t>(state);
    if (states) states[i] = state;
  }
}

template <typename scalar_t>
__global__ void scan_backward_kernel(const scalar_t* __restrict__ a, const float* __restrict__ states,
                                     const scalar_t* __restrict__ dh, scalar_t* __restrict__ da,
                                     scalar_t* __restrict__ dx, int64_t B, int64_t T, int64_t D) {
  const int64_t channel = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (channel >= B * D || T == 0) return;
  const int64_t b = channel / D, d = channel % D;
  int64_t i = (b * T + T - 1) * D + d;
  float g = 0.0f, a_next = 0.0f;  // g_{t+1} and a_{t+1}, zero past the end
  for (int64_t t = T - 1; t >= 0; --t, i -= D) {
    g = static_cast<float>(dh[i]) + a_next * g;
    const float h_prev = t > 0 ? states[i - D] : 0.0f;
    dx[i] = static_cast<scalar_t>(g);
    da[i] = static_cast<scalar_t>(g * h_prev);
    a_next = static_cast<float>(a[i]);
  }
}

template <typename scalar_t>
__global__ void selective_forward_kernel(const scalar_t* __restrict__ u, const scalar_t* __restrict__ delta,
                                         const scalar_t* __restrict__ A, const scalar_t* __restrict__ Bm,
                                         const scalar_t* __restrict__ Cm, const scalar_t* __restrict__ Dv,
                                         scalar_t* __restrict__ y, float* __restrict__ checkpoints,
                                         int64_t T, int64_t D, int64_t N) {
  const int64_t b = blockIdx.y;
  const int64_t d = blockIdx.x * static_cast<int64_t>(kChannels) + threadIdx.x;
  if (d >= D) return;
  const int64_t chunks = (T + kChunk - 1) / kChunk;
  float A_d[kMaxState], h[kMaxState];
  for (int n = 0; n < kMaxState; ++n) {
    A_d[n] = n < N ? static_cast<float>(A[d * N + n]) : 0.0f;
    h[n] = 0.0f;
  }
  const float D_d = Dv ? static_cast<float>(Dv[d]) : 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    if (checkpoints && t % kChunk == 0) {  // the state entering chunk t / kChunk
      float* out = checkpoints + ((b * chunks + t / kChunk) * N) * D + d;
      for (int n = 0; n < N; ++n) out[n * D] = h[n];
    }
    const int64_t i = (b * T + t) * D + d;
    const float u_t = static_cast<float>(u[i]), delta_t = static_cast<float>(delta[i]);
    const scalar_t* B_t = Bm + (b * T + t) * N;
    const scalar_t* C_t = Cm + (b * T + t) * N;
    const float du = delta_t * u_t;
    float out = 0.0f;
    for (int n = 0; n < kMaxState; ++n) {
      if (n < N) {
        h[n] = expf(delta_t * A_d[n]) * h[n] + du * static_cast<float>(B_t[n]);
        out += static_cast<float>(C_t[n]) * h[n];
      }
    }
    if (Dv) out += D_d * u_t;
    y[i] = static_cast<scalar_t>(out);
  }
}

template <typename scalar_t>
__global__ void selective_backward_kernel(const scalar_t* __restrict__ u, const scalar_t* __restrict__ delta,
                                          const scalar_t* __restrict__ A, const scalar_t* __restrict__ Bm,
                                          const scalar_t* __restrict__ Cm, const scalar_t* __restrict__ Dv,
                                          const float* __restrict__ checkpoints,
                                          const scalar_t* __restrict__ dy, scalar_t* __restrict__ du,
                                          scalar_t* __restrict__ ddelta, float* __restrict__ dA_part,
                                          float* __restrict__ dB_part, float* __restrict__ dC_part,
                                          float* __restrict__ dD_part, int64_t T, int64_t D, int64_t N) {
  __shared__ float terms[2 * kMaxState][kChannels];  // a step's dC (rows < N) and dB (rows N..2N) terms
  const int64_t b = blockIdx.y;
  const int64_t d = blockIdx.x * static_cast<int64_t>(kChannels) + threadIdx.x;
  const bool active = d < D;  // the others stay for the barriers and add nothing
  const int64_t blocks = gridDim.x, chunks = (T + kChunk - 1) / kChunk;
  const int width = static_cast<int>(blockDim.x);
  float A_d[kMaxState], g[kMaxState], a_next[kMaxState], dA[kMaxState];
  float hs[kChunk][kMaxState];  // the chunk's states h_t, recomputed
  for (int n = 0; n < kMaxState; ++n) {
    A_d[n] = active && n < N ? static_cast<float>(A[d * N + n]) : 0.0f;
    g[n] = a_next[n] = dA[n] = 0.0f;
  }
  const float D_d = active && Dv ? static_cast<float>(Dv[d]) : 0.0f;
  float dD = 0.0f;
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    const int steps = T - t0 < kChunk ? static_cast<int>(T - t0) : kChunk;
    float start[kMaxState];  // h_{t0 - 1}
    for (int n = 0; n < kMaxState; ++n)
      start[n] = active && n < N ? checkpoints[((b * chunks + c) * N + n) * D + d] : 0.0f;
    if (active) {
      for (int s = 0; s < steps; ++s) {
        const int64_t i = (b * T + t0 + s) * D + d;
        const float u_t = static_cast<float>(u[i]), delta_t = static_cast<float>(delta[i]);
        const scalar_t* B_t = Bm + (b * T + t0 + s) * N;
        for (int n = 0; n < kMaxState; ++n) {
          if (n < N) {
            const float prev = s > 0 ? hs[s - 1][n] : start[n];
            hs[s][n] = expf(delta_t * A_d[n]) * prev + delta_t * u_t * static_cast<float>(B_t[n]);
          }
        }
      }
    }
    for (int s = steps - 1; s >= 0; --s) {
      const int64_t t = t0 + s;
      const scalar_t* B_t = Bm + (b * T + t) * N;
      const scalar_t* C_t = Cm + (b * T + t) * N;
      if (active) {
        const int64_t i = (b * T + t) * D + d;
        const float u_t = static_cast<float>(u[i]), delta_t = static_cast<float>(delta[i]);
        const float dy_t = static_cast<float>(dy[i]);
        float du_t = Dv ? D_d * dy_t : 0.0f, ddelta_t = 0.0f;
        for (int n = 0; n < kMaxState; ++n) {
          if (n < N) {
            const float B_tn = static_cast<float>(B_t[n]), C_tn = static_cast<float>(C_t[n]);
            const float h_prev = s > 0 ? hs[s - 1][n] : start[n];
            const float a_tn = expf(delta_t * A_d[n]);
            g[n] = dy_t * C_tn + a_next[n] * g[n];
            du_t += g[n] * delta_t * B_tn;
            ddelta_t += g[n] * (A_d[n] * a_tn * h_prev + B_tn * u_t);
            dA[n] += g[n] * h_prev * a_tn * delta_t;
            terms[n][threadIdx.x] = dy_t * hs[s][n];
            terms[N + n][threadIdx.x] = g[n] * delta_t * u_t;
            a_next[n] = a_tn;
          }
        }
        if (Dv) dD += dy_t * u_t;
        du[i] = static_cast<scalar_t>(du_t);
        ddelta[i] = static_cast<scalar_t>(ddelta_t);
      } else {
        for (int n = 0; n < N; ++n) terms[n][threadIdx.x] = terms[N + n][threadIdx.x] = 0.0f;
      }
      __syncthreads();
      if (threadIdx.x < 2 * N) {  // one thread a row: the block's channels in order
        const int row = static_cast<int>(threadIdx.x);
        float sum = 0.0f;
        for (int j = 0; j < width; ++j) sum += terms[row][j];
        const int n = row < N ? row : row - static_cast<int>(N);
        float* part = row < N ? dC_part : dB_part;
        part[((b * T + t) * blocks + blockIdx.x) * N + n] = sum;
      }
      __syncthreads();
    }
  }
  if (!active) return;
  for (int n = 0; n < N; ++n) dA_part[(b * D + d) * N + n] = dA[n];
  if (dD_part) dD_part[b * D + d] = dD;
}

template <typename scalar_t>
void launch_scan_forward(const scalar_t* a, const scalar_t* x, scalar_t* h, float* states, int64_t B,
                         int64_t T, int64_t D, cudaStream_t stream) {
  if (B * D == 0 || T == 0) return;
  const int threads = B * D < kScanThreads ? static_cast<int>(B * D) : kScanThreads;
  const dim3 grid((B * D + threads - 1) / threads);
  scan_forward_kernel<scalar_t><<<grid, threads, 0, stream>>>(a, x, h, states, B, T, D);
}

template <typename scalar_t>
void launch_scan_backward(const scalar_t* a, const float* states, const scalar_t* dh, scalar_t* da,
                          scalar_t* dx, int64_t B, int64_t T, int64_t D, cudaStream_t stream) {
  if (B * D == 0 || T == 0) return;
  const int threads = B * D < kScanThreads ? static_cast<int>(B * D) : kScanThreads;
  const dim3 grid((B * D + threads - 1) / threads);
  scan_backward_kernel<scalar_t><<<grid, threads, 0, stream>>>(a, states, dh, da, dx, B, T, D);
}

template <typename scalar_t>
void launch_selective_forward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                              const scalar_t* Bm, const scalar_t* Cm, const scalar_t* Dv, scalar_t* y,
                              float* checkpoints, int64_t B, int64_t T, int64_t D, int64_t N,
                              cudaStream_t stream) {
  if (B * D == 0 || T == 0) return;
  const int threads = D < kChannels ? static_cast<int>(D) : kChannels;
  const dim3 grid((D + kChannels - 1) / kChannels, B);
  selective_forward_kernel<scalar_t><<<grid, threads, 0, stream>>>(u, delta, A, Bm, Cm, Dv, y, checkpoints,
                                                                   T, D, N);
}

template <typename scalar_t>
void launch_selective_backward(const scalar_t* u, const scalar_t* delta, const scalar_t* A,
                               const scalar_t* Bm, const scalar_t* Cm, const scalar_t* Dv,
                               const float* checkpoints, const scalar_t* dy, scalar_t* du,
                               scalar_t* ddelta, float* dA_part, float* dB_part, float* dC_part,
                               float* dD_part, int64_t B, int64_t T, int64_t D, int64_t N,
                               cudaStream_t stream) {
  if (B * D == 0 || T == 0) return;
  // at least 2N threads, so that every row of the step's sums has its thread
  int threads = D < kChannels ? static_cast<int>(D) : kChannels;
  if (threads < 2 * N) threads = static_cast<int>(2 * N);
  if (threads > kChannels) threads = kChannels;
  const dim3 grid((D + kChannels - 1) / kChannels, B);
  selective_backward_kernel<scalar_t><<<grid, threads, 0, stream>>>(
      u, delta, A, Bm, Cm, Dv, checkpoints, dy, du, ddelta, dA_part, dB_part, dC_part, dD_part, T, D, N);
}

#define INSTANTIATE(scalar_t)                                                                            \
  template void launch_scan_forward<scalar_t>(const scalar_t*, const scalar_t*, scalar_t*, float*,      \
                                              int64_t, int64_t, int64_t, cudaStream_t);                 \
  template void launch_scan_backward<scalar_t>(const scalar_t*, const float*, const scalar_t*, scalar_t*, \
                                               scalar_t*, int64_t, int64_t, int64_t, cudaStream_t);     \
  template void launch_selective_forward<scalar_t>(const scalar_t*, const scalar_t*, const scalar_t*,   \
                                                   const scalar_t*, const scalar_t*, const scalar_t*,   \
                                                   scalar_t*, float*, int64_t, int64_t, int64_t,        \
                                                   int64_t, cudaStream_t);                              \
  template void launch_selective_backward<scalar_t>(                                                    \
      const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*, const scalar_t*,              \
      const scalar_t*, const float*, const scalar_t*, scalar_t*, scalar_t*, float*, float*, float*,     \
      float*, int64_t, int64_t, int64_t, int64_t, cudaStream_t);

INSTANTIATE(float)
INSTANTIATE(__nv_bfloat16)
