// A CPU emulator of the CUDA execution model, so that the project's .cu kernels run in the tests on a
// machine without a GPU. It is force-included (g++ -include emulator.h) into every source that build.py
// compiles; build.py has already rewritten what C++ cannot parse:
//   kernel<<<grid, block, shmem, stream>>>(args);  ->  emu::launch(kernel, emu::config(grid, block,
//                                                      shmem, stream), args);
//   extern __shared__ T name[];                     ->  T* name = emu::dynamic_shared<T>();
//   __shared__ T name[N]...;                        ->  the same, then emu::shared_memory(name, ...)
//
// The model. A launch runs its blocks one after another. A block runs blockDim real std::threads that
// share the block's memory: `__shared__` becomes `static` (one copy per kernel, which is right because
// one block runs at a time) and `__syncthreads()` is a std::barrier over the block's threads. A thread
// that returns leaves that barrier, as an exited GPU thread no longer holds back __syncthreads. The
// threads are made once per launch and walk the blocks together, a second barrier separating blocks.
// Shared memory, static and dynamic, is filled with 0xff bytes (NaN as float, -1 as int) before every
// block, so a kernel that reads shared memory it did not write in this block fails the tests.
// Launches check CUDA's limits (1..1024 threads a block, a non-empty grid, y and z below 65536,
// 48 KiB of dynamic shared memory) and throw where the GPU would refuse to launch.
//
// Not emulated: warps (no warp-synchronous code, shuffles or warp votes), memory ordering weaker than
// the barrier's, streams and events (everything is synchronous), and concurrent blocks.
#pragma once
#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

// The built-in variables: each emulated thread has its own.
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
};

// The arguments between <<< and >>>: grid, block, dynamic shared bytes, stream (ignored).
inline LaunchConfig config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t = nullptr) {
  return {grid, block, shared_bytes};
}

namespace detail {

inline thread_local std::barrier<>* block_barrier = nullptr;  // this block's __syncthreads
inline unsigned char* dynamic_shared_memory = nullptr;        // this launch's extern __shared__ array
inline size_t dynamic_shared_bytes = 0;
inline std::mutex shared_regions_mutex;
inline std::vector<std::pair<void*, size_t>> shared_regions;  // every static __shared__ array seen

inline void poison(void* memory, size_t bytes) { std::memset(memory, 0xff, bytes); }

inline void poison_shared_memory() {
  for (auto [memory, bytes] : shared_regions) poison(memory, bytes);
  if (dynamic_shared_memory) poison(dynamic_shared_memory, dynamic_shared_bytes);
}

inline dim3 unflatten(uint64_t i, dim3 shape) {
  return dim3(i % shape.x, i / shape.x % shape.y, i / (uint64_t(shape.x) * shape.y));
}

inline void check_config(const LaunchConfig& c) {
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  auto fail = [](const std::string& why) {
    throw std::invalid_argument("emulated CUDA launch: " + why + " (a GPU refuses this launch)");
  };
  if (threads == 0 || threads > 1024)
    fail("a block must have 1 to 1024 threads; got " + std::to_string(threads));
  if (c.block.z > 64) fail("blockDim.z must be at most 64");
  if (uint64_t(c.grid.x) * c.grid.y * c.grid.z == 0) fail("the grid is empty");
  if (c.grid.y > 65535 || c.grid.z > 65535) fail("gridDim.y and gridDim.z must be below 65536");
  if (c.shared_bytes > 48 * 1024) fail("more than 48 KiB of dynamic shared memory");
}

// Runs `kernel` once per (block, thread) of the launch, blocks in order, a block's threads together.
inline void run(const LaunchConfig& c, const std::function<void()>& kernel) {
  check_config(c);
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  const uint64_t blocks = uint64_t(c.grid.x) * c.grid.y * c.grid.z;
  std::vector<std::max_align_t> dynamic((c.shared_bytes + sizeof(std::max_align_t) - 1) /
                                        sizeof(std::max_align_t));
  dynamic_shared_memory = reinterpret_cast<unsigned char*>(dynamic.data());
  dynamic_shared_bytes = c.shared_bytes;
  poison_shared_memory();
  std::optional<std::barrier<>> sync(std::in_place, threads);
  auto next_block = [&]() noexcept {  // runs once, when every thread has finished the block
    sync.emplace(threads);
    poison_shared_memory();
  };
  std::barrier block_done(threads, next_block);
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (uint64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      threadIdx = unflatten(t, c.block);
      blockDim = c.block;
      gridDim = c.grid;
      for (uint64_t b = 0; b < blocks; ++b) {
        blockIdx = unflatten(b, c.grid);
        block_barrier = &*sync;
        kernel();
        sync->arrive_and_drop();  // returned: later __syncthreads of this block no longer wait for it
        block_done.arrive_and_wait();
      }
    });
  }
  for (auto& worker : workers) worker.join();
  dynamic_shared_memory = nullptr;
  dynamic_shared_bytes = 0;
}

}  // namespace detail

// The launch's dynamic shared memory (the third launch argument), as an array of T.
template <typename T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::dynamic_shared_memory);
}

// Registers a static __shared__ array so it is poisoned before each block; poisons it the first time.
template <typename T>
bool shared_memory(T& array, size_t bytes) {
  std::lock_guard<std::mutex> lock(detail::shared_regions_mutex);
  detail::shared_regions.emplace_back(static_cast<void*>(&array), bytes);
  detail::poison(&array, bytes);
  return true;
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), LaunchConfig c, Args&&... args) {
  // Converted to the kernel's parameter types once, as a CUDA launch copies its arguments.
  const std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  detail::run(c, [&] { std::apply(kernel, params); });
}

}  // namespace emu

inline void __syncthreads() { emu::detail::block_barrier->arrive_and_wait(); }

template <typename T>
T atomicAdd(T* address, std::type_identity_t<T> value) {  // returns the old value, as CUDA's does
  return std::atomic_ref<T>(*address).fetch_add(value);
}
