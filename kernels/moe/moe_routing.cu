// Expert routing positions: a parallel, stable counting sort of the T k assignments by expert.
// The same algorithm as triton_routing.py: (1) a histogram per chunk of kRoutingBlock assignments in
// GShard's priority order p = j T + t, (2) an exclusive scan of the histograms over chunks (done by
// the caller), (3) each assignment's rank = its chunk's base + its rank inside the chunk; it is kept
// when rank < counts[e] and lands in slot offsets[e] + rank.
#include "moe_kernels.h"

__device__ __forceinline__ int64_t priority_to_tk(int64_t p, int64_t T, int64_t k) {
  return (p % T) * k + p / T;  // assignment p = j T + t lives at [t, j] of a [T, k] array
}

__global__ void expert_histogram_kernel(const int64_t* __restrict__ expert_index,
                                        int64_t* __restrict__ hist, int64_t T, int64_t k,
                                        int64_t E) {
  extern __shared__ int counts[];  // [E]
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  const int64_t p = blockIdx.x * (int64_t)kRoutingBlock + threadIdx.x;
  if (p < T * k) atomicAdd(&counts[expert_index[priority_to_tk(p, T, k)]], 1);
  __syncthreads();
  for (int64_t e = threadIdx.x; e < E; e += blockDim.x) hist[blockIdx.x * E + e] = counts[e];
}

__global__ void dispatch_slot_kernel(const int64_t* __restrict__ expert_index,
                                     const int64_t* __restrict__ base,
                                     const int64_t* __restrict__ counts,
                                     const int64_t* __restrict__ offsets, int64_t* __restrict__ slot,
                                     int64_t T, int64_t k, int64_t E) {
  __shared__ int64_t chunk[kRoutingBlock];  // experts of this chunk, -1 past the end
  const int64_t p = blockIdx.x * (int64_t)kRoutingBlock + threadIdx.x;
  const bool valid = p < T * k;
  const int64_t expert = valid ? expert_index[priority_to_tk(p, T, k)] : -1;
  chunk[threadIdx.x] = expert;
  __syncthreads();
  if (!valid) return;
  int64_t rank = base[blockIdx.x * E + expert];  // earlier chunks
  for (int i = 0; i < (int)threadIdx.x; ++i) rank += chunk[i] == expert;  // earlier in this chunk
  slot[priority_to_tk(p, T, k)] = rank < counts[expert] ? offsets[expert] + rank : -1;
}

void launch_expert_histogram(const int64_t* expert_index, int64_t* hist, int64_t T, int64_t k,
                             int64_t E, cudaStream_t stream) {
  const int64_t chunks = (T * k + kRoutingBlock - 1) / kRoutingBlock;
  if (chunks == 0) return;
  expert_histogram_kernel<<<chunks, kRoutingBlock, E * sizeof(int), stream>>>(expert_index, hist, T,
                                                                              k, E);
}

void launch_dispatch_slot(const int64_t* expert_index, const int64_t* base, const int64_t* counts,
                          const int64_t* offsets, int64_t* slot, int64_t T, int64_t k, int64_t E,
                          cudaStream_t stream) {
  const int64_t chunks = (T * k + kRoutingBlock - 1) / kRoutingBlock;
  if (chunks == 0) return;
  dispatch_slot_kernel<<<chunks, kRoutingBlock, 0, stream>>>(expert_index, base, counts, offsets,
                                                             slot, T, k, E);
}
