// Grouped GEMM for the experts of an MoE layer: every expert's matrix product over its own block of
// rows, without padding (MegaBlocks, Gale et al. 2022; ScatterMoE, Tan et al. 2024). The same algorithm
// as triton_grouped_gemm.py, as a shared-memory tiled GEMM in fp32:
//
// - grouped_matmul_kernel: out[rows] = epilogue(a[rows] W_e). One thread block per (row tile, column
//   tile) of kGemmTile x kGemmTile outputs; the host's tile map (course.moe.experts.expert_tiles) says
//   which expert and rows a row tile covers, and a tile never straddles two experts. The block walks K
//   in steps of kGemmTile: its threads copy a [rows, k] tile of a and a [k, columns] tile of W_e into
//   shared memory, then each thread accumulates kGemmRowsPerThread outputs of one column, so every
//   value read from shared memory feeds several multiply-adds. The forward runs it twice (ReLU epilogue,
//   then none); the backward runs it with transposed weights (strides, nothing copied) for
//   grad_h = (grad_y W2_e^T) * (h > 0) and grad_x = grad_h W1_e^T.
// - grouped_weight_grad_kernel: grad_W_e = A_e^T B_e. One thread block per (expert, output tile) walks
//   the expert's rows in steps of kGemmTile; an empty expert takes no step and writes zeros.
#include "moe_kernels.h"

constexpr int kGemmThreadsY = kGemmTile / kGemmRowsPerThread;  // threads per block: kGemmTile x this

__device__ __forceinline__ float apply_epilogue(float value, Epilogue epilogue, const float* gate,
                                                int64_t at) {
  // As torch.relu and its gradient: a NaN passes through both (value > 0 ? value : 0 would drop it).
  if (epilogue == Epilogue::kRelu) return value < 0.0f ? 0.0f : value;
  if (epilogue == Epilogue::kReluGrad) return gate[at] <= 0.0f ? 0.0f : value;
  return value;
}

__global__ void grouped_matmul_kernel(const float* __restrict__ a, const float* __restrict__ w,
                                      const float* __restrict__ gate, float* __restrict__ out,
                                      const int64_t* __restrict__ tile_expert,
                                      const int64_t* __restrict__ tile_start,
                                      const int64_t* __restrict__ tile_end, int64_t K, int64_t N,
                                      int64_t w_stride_e, int64_t w_stride_k, int64_t w_stride_n,
                                      Epilogue epilogue) {
  __shared__ float a_tile[kGemmTile][kGemmTile];  // [row, k]
  __shared__ float w_tile[kGemmTile][kGemmTile];  // [k, column]
  const int64_t row_start = tile_start[blockIdx.x];
  const int64_t row_end = tile_end[blockIdx.x];
  const float* w_e = w + tile_expert[blockIdx.x] * w_stride_e;
  const int64_t col = blockIdx.y * (int64_t)kGemmTile + threadIdx.x;
  float acc[kGemmRowsPerThread] = {};  // rows threadIdx.y + i kGemmThreadsY of column `col`
  for (int64_t k_start = 0; k_start < K; k_start += kGemmTile) {
    for (int i = 0; i < kGemmRowsPerThread; ++i) {  // threadIdx.x runs along a row: coalesced reads
      const int r = threadIdx.y + i * kGemmThreadsY;
      const int64_t row = row_start + r, k = k_start + threadIdx.x, w_k = k_start + r;
      a_tile[r][threadIdx.x] = row < row_end && k < K ? a[row * K + k] : 0.0f;
      w_tile[r][threadIdx.x] = w_k < K && col < N ? w_e[w_k * w_stride_k + col * w_stride_n] : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < kGemmTile; ++kk) {
      const float w_value = w_tile[kk][threadIdx.x];
      for (int i = 0; i < kGemmRowsPerThread; ++i)
        acc[i] += a_tile[threadIdx.y + i * kGemmThreadsY][kk] * w_value;
    }
    __syncthreads();  // the tiles are overwritten in the next step
  }
  for (int i = 0; i < kGemmRowsPerThread; ++i) {
    const int64_t row = row_start + threadIdx.y + i * kGemmThreadsY;
    if (row < row_end && col < N)
      out[row * N + col] = apply_epilogue(acc[i], epilogue, gate, row * N + col);
  }
}

__global__ void grouped_weight_grad_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                           const int64_t* __restrict__ offsets,
                                           float* __restrict__ grad_w, int64_t K, int64_t N) {
  __shared__ float a_tile[kGemmTile][kGemmTile];  // [row, k]
  __shared__ float b_tile[kGemmTile][kGemmTile];  // [row, column]
  const int64_t expert = blockIdx.z;
  const int64_t row_begin = offsets[expert], row_end = offsets[expert + 1];
  const int64_t k_start = blockIdx.y * (int64_t)kGemmTile;
  const int64_t col = blockIdx.x * (int64_t)kGemmTile + threadIdx.x;
  float acc[kGemmRowsPerThread] = {};  // grad_w[expert, k_start + threadIdx.y + i kGemmThreadsY, col]
  for (int64_t row_start = row_begin; row_start < row_end; row_start += kGemmTile) {
    for (int i = 0; i < kGemmRowsPerThread; ++i) {
      const int r = threadIdx.y + i * kGemmThreadsY;
      const int64_t row = row_start + r, k = k_start + threadIdx.x;
      a_tile[r][threadIdx.x] = row < row_end && k < K ? a[row * K + k] : 0.0f;
      b_tile[r][threadIdx.x] = row < row_end && col < N ? b[row * N + col] : 0.0f;
    }
    __syncthreads();
    for (int rr = 0; rr < kGemmTile; ++rr) {
      const float b_value = b_tile[rr][threadIdx.x];
      for (int i = 0; i < kGemmRowsPerThread; ++i)
        acc[i] += a_tile[rr][threadIdx.y + i * kGemmThreadsY] * b_value;
    }
    __syncthreads();
  }
  for (int i = 0; i < kGemmRowsPerThread; ++i) {
    const int64_t k = k_start + threadIdx.y + i * kGemmThreadsY;
    if (k < K && col < N) grad_w[(expert * K + k) * N + col] = acc[i];
  }
}

void launch_grouped_matmul(const float* a, const float* w, const float* gate, float* out,
                           const int64_t* tile_expert, const int64_t* tile_start,
                           const int64_t* tile_end, int64_t n_tiles, int64_t K, int64_t N,
                           int64_t w_stride_e, int64_t w_stride_k, int64_t w_stride_n,
                           Epilogue epilogue, cudaStream_t stream) {
  if (n_tiles == 0 || N == 0) return;
  const dim3 grid(n_tiles, (N + kGemmTile - 1) / kGemmTile);
  const dim3 block(kGemmTile, kGemmThreadsY);
  grouped_matmul_kernel<<<grid, block, 0, stream>>>(a, w, gate, out, tile_expert, tile_start, tile_end,
                                                    K, N, w_stride_e, w_stride_k, w_stride_n, epilogue);
}

void launch_grouped_weight_grad(const float* a, const float* b, const int64_t* offsets, float* grad_w,
                                int64_t E, int64_t K, int64_t N, cudaStream_t stream) {
  if (E == 0 || K == 0 || N == 0) return;
  const dim3 grid((N + kGemmTile - 1) / kGemmTile, (K + kGemmTile - 1) / kGemmTile, E);
  const dim3 block(kGemmTile, kGemmThreadsY);
  grouped_weight_grad_kernel<<<grid, block, 0, stream>>>(a, b, offsets, grad_w, K, N);
}
