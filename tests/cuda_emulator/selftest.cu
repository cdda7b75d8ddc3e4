// The emulator's own test: small CUDA kernels whose result depends on each piece of the model
// (barriers, threads that return early, atomics, dynamic shared memory, poisoning, launch limits).
// build.py rewrites this file like a kernel source; it is compiled as a program and prints one line per
// check, "ok <name>" or "FAIL <name>", and exits 1 if any check failed.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <cuda_runtime.h>

constexpr int kThreads = 64;

// Reverses each block's slice through shared memory: wrong without the barrier.
__global__ void reverse_kernel(const int* in, int* out) {
  __shared__ int slice[kThreads];
  slice[threadIdx.x] = in[blockIdx.x * kThreads + threadIdx.x];
  __syncthreads();
  out[blockIdx.x * kThreads + threadIdx.x] = slice[kThreads - 1 - threadIdx.x];
}

// The same without the barrier: a thread reads a slot that another writes, in no guaranteed order.
__global__ void unsynchronized_reverse_kernel(const int* in, int* out) {
  __shared__ int slice[kThreads];
  slice[threadIdx.x] = in[blockIdx.x * kThreads + threadIdx.x];
  out[blockIdx.x * kThreads + threadIdx.x] = slice[kThreads - 1 - threadIdx.x];
}

// Threads past n return before a barrier that the others still pass: must not deadlock.
__global__ void early_return_kernel(int n, int* out) {
  __shared__ int total[1];
  if (threadIdx.x == 0) total[0] = 0;
  __syncthreads();
  if ((int)threadIdx.x >= n) return;
  atomicAdd(&total[0], 1);
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = total[0];
}

// A histogram in dynamic shared memory, one atomicAdd per thread.
__global__ void histogram_kernel(const int* values, int bins, int* hist) {
  extern __shared__ int counts[];
  for (int b = threadIdx.x; b < bins; b += blockDim.x) counts[b] = 0;
  __syncthreads();
  atomicAdd(&counts[values[blockIdx.x * blockDim.x + threadIdx.x]], 1);
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += blockDim.x) hist[blockIdx.x * bins + b] = counts[b];
}

// Block 0 writes its shared array, block 1 only reads it: block 1 must see poison, not block 0's data.
__global__ void stale_shared_kernel(float* out) {
  __shared__ float scratch[kThreads];
  if (blockIdx.x == 0) scratch[threadIdx.x] = 1.0f;
  __syncthreads();
  out[blockIdx.x * kThreads + threadIdx.x] = scratch[threadIdx.x];
}

__global__ void noop_kernel() {}

// a * a - b * b for a == b: 0 when each product is rounded, b^2's rounding error when a * a - b * b is
// contracted into fma(a, a, -b * b), as nvcc does by default (build.py's NVCC_LIKE_FMA does it here).
__global__ void square_difference_kernel(const float* a, const float* b, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = a[i] * a[i] - b[i] * b[i];
}

// 2-D blocks and grids: every thread writes its own flattened coordinates.
__global__ void coordinates_kernel(int* out) {
  const int block = blockIdx.y * gridDim.x + blockIdx.x;
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  out[block * blockDim.x * blockDim.y + thread] = block * 1000 + thread;
}

static int failures = 0;

static void check(bool ok, const char* name) {
  std::printf("%s %s\n", ok ? "ok" : "FAIL", name);
  failures += !ok;
}

static bool launch_throws(void (*launch)()) {
  try {
    launch();
  } catch (const std::invalid_argument&) {
    return true;
  }
  return false;
}

int main() {
  const int blocks = 3;
  std::vector<int> in(blocks * kThreads), out(blocks * kThreads);
  for (int i = 0; i < blocks * kThreads; ++i) in[i] = i;
  reverse_kernel<<<blocks, kThreads>>>(in.data(), out.data());
  bool reversed = true;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < kThreads; ++t) reversed &= out[b * kThreads + t] == b * kThreads + kThreads - 1 - t;
  check(reversed, "__syncthreads orders shared-memory writes before reads");

  std::vector<int> racy(blocks * kThreads, 0);
  unsynchronized_reverse_kernel<<<blocks, kThreads>>>(in.data(), racy.data());
  check(racy[0] == -1, "a missing __syncthreads reads poison");

  std::vector<int> alive(blocks, -1);
  early_return_kernel<<<blocks, kThreads, 0, nullptr>>>(10, alive.data());
  check(alive[0] == 10 && alive[2] == 10, "threads that return leave the barrier");

  const int bins = 5;
  std::vector<int> values(blocks * kThreads), hist(blocks * bins);
  for (int i = 0; i < blocks * kThreads; ++i) values[i] = (i * 7) % bins;
  histogram_kernel<<<blocks, kThreads, bins * sizeof(int)>>>(values.data(), bins, hist.data());
  bool counted = true;
  for (int b = 0; b < blocks; ++b) {
    std::vector<int> expected(bins, 0);
    for (int t = 0; t < kThreads; ++t) ++expected[values[b * kThreads + t]];
    for (int e = 0; e < bins; ++e) counted &= hist[b * bins + e] == expected[e];
  }
  check(counted, "atomicAdd on dynamic shared memory");

  std::vector<float> seen(2 * kThreads);
  stale_shared_kernel<<<2, kThreads>>>(seen.data());
  check(seen[0] == 1.0f && std::isnan(seen[kThreads]), "shared memory is poisoned between blocks");

  std::vector<int> coords(2 * 3 * 4 * 2, -1);
  coordinates_kernel<<<dim3(2, 3), dim3(4, 2)>>>(coords.data());
  bool covered = true;
  for (int i = 0; i < (int)coords.size(); ++i) covered &= coords[i] == (i / 8) * 1000 + i % 8;
  check(covered, "2-D grids and blocks");

#ifdef __FMA__
  std::vector<float> a(kThreads), b(kThreads), difference(kThreads);
  for (int i = 0; i < kThreads; ++i) a[i] = b[i] = 0.1f + 0.0137f * i;
  square_difference_kernel<<<1, kThreads>>>(a.data(), b.data(), difference.data());
  int contracted = 0;
  for (float d : difference) contracted += d != 0.0f;
  check(contracted > 0, "a * b - c * d is contracted into an fma, as nvcc does");
#endif

  check(launch_throws([] { noop_kernel<<<0, kThreads>>>(); }), "an empty grid is refused");
  check(launch_throws([] { noop_kernel<<<1, 2048>>>(); }), "more than 1024 threads are refused");
  return failures ? 1 : 0;
}
