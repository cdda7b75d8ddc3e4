// A CPU emulator of the CUDA execution model, so that the project's .cu kernels run in the tests on a
// machine without a GPU. It is force-included (g++ -include emulator.h) into every source that build.py
// compiles; build.py has already rewritten what C++ cannot parse:
//   kernel<<<grid, block, shmem, stream>>>(args);  ->  emu::launch(kernel, emu::config(grid, block,
//                                                      shmem, stream), args);
//   extern __shared__ T name[];                     ->  T* name = emu::dynamic_shared<T>();
//   __shared__ T name[N]...;                        ->  the same, then emu::shared_memory(name, ...)
//
// The model. A launch runs its blocks one after another. A block's threads are fibers (ucontext
// coroutines with stacks of their own) on the calling thread: `__shared__` becomes `static` (one copy
// per kernel, which is right because one block runs at a time), and `__syncthreads()` hands control
// back to the block's scheduler. The scheduler runs the block in phases: in each phase every thread
// that has not returned runs until it reaches a barrier or returns; when all have, the barrier opens and
// the next phase starts. A thread that returns leaves the barrier, as an exited GPU thread no longer
// holds back __syncthreads. Phases alternate the order of the threads (0 to n-1, then n-1 to 0), so a
// read of shared memory that another thread writes without a barrier in between sees the poison
// below in one order or the other, every time: the bug a missing __syncthreads is.
// Shared memory, static and dynamic, is filled with 0xff bytes (NaN as float, -1 as int) before every
// block, so a kernel that reads shared memory it did not write in this block fails the tests.
// Launches check CUDA's limits (1..1024 threads a block, a non-empty grid, y and z below 65536,
// 48 KiB of dynamic shared memory) and throw where the GPU would refuse to launch.
// (A fiber switch costs a few hundred nanoseconds; an OS thread per CUDA thread, as in a first
// version, cost milliseconds per block on a 2-core machine.)
//
// Not emulated: warps (no warp-synchronous code, shuffles or warp votes), memory ordering weaker than
// the barrier's, streams and events (everything is synchronous), and concurrent blocks.
#pragma once
#include <ucontext.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
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

// The built-in variables, set by the scheduler before it resumes an emulated thread.
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

constexpr size_t kFiberStackBytes = 256 * 1024;  // an emulated thread's stack (a GPU thread's is 1 KiB+)

struct Fiber {
  ucontext_t context;
  char* stack;
  bool returned;
};

struct Scheduler {  // the block that runs now
  ucontext_t context;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* kernel = nullptr;
  std::exception_ptr error;
};

inline thread_local Scheduler* scheduler = nullptr;
inline thread_local std::vector<std::unique_ptr<char[]>> fiber_stacks;  // reused from launch to launch

inline void fiber_main() {  // an emulated thread: the kernel, then back to the scheduler (uc_link)
  Scheduler& s = *scheduler;
  try {
    (*s.kernel)();
  } catch (...) {  // an exception may not unwind past the fiber's own stack
    if (!s.error) s.error = std::current_exception();
  }
  s.current->returned = true;
}

inline void sync_threads() { swapcontext(&scheduler->current->context, &scheduler->context); }

// Runs `kernel` once per (block, thread) of the launch, blocks in order, a block's threads in phases
// between barriers.
inline void run(const LaunchConfig& c, const std::function<void()>& kernel) {
  check_config(c);
  const uint64_t threads = uint64_t(c.block.x) * c.block.y * c.block.z;
  const uint64_t blocks = uint64_t(c.grid.x) * c.grid.y * c.grid.z;
  std::vector<std::max_align_t> dynamic((c.shared_bytes + sizeof(std::max_align_t) - 1) /
                                        sizeof(std::max_align_t));
  dynamic_shared_memory = reinterpret_cast<unsigned char*>(dynamic.data());
  dynamic_shared_bytes = c.shared_bytes;
  while (fiber_stacks.size() < threads)  // not touched until used: only the pages a thread needs
    fiber_stacks.emplace_back(new char[kFiberStackBytes]);
  Scheduler s;
  s.kernel = &kernel;
  s.fibers.resize(threads);
  scheduler = &s;
  blockDim = c.block;
  gridDim = c.grid;
  for (uint64_t b = 0; b < blocks && !s.error; ++b) {
    blockIdx = unflatten(b, c.grid);
    poison_shared_memory();
    for (uint64_t t = 0; t < threads; ++t) {
      Fiber& f = s.fibers[t];
      f.stack = fiber_stacks[t].get();
      f.returned = false;
      getcontext(&f.context);
      f.context.uc_stack.ss_sp = f.stack;
      f.context.uc_stack.ss_size = kFiberStackBytes;
      f.context.uc_link = &s.context;
      makecontext(&f.context, fiber_main, 0);
    }
    for (uint64_t phase = 0;; ++phase) {  // one phase per barrier, until every thread has returned
      bool ran = false;
      for (uint64_t i = 0; i < threads; ++i) {
        const uint64_t t = phase % 2 ? threads - 1 - i : i;
        Fiber& f = s.fibers[t];
        if (f.returned) continue;
        ran = true;
        s.current = &f;
        threadIdx = unflatten(t, c.block);
        swapcontext(&s.context, &f.context);  // until its next __syncthreads, or its return
      }
      if (!ran) break;
    }
  }
  scheduler = nullptr;
  dynamic_shared_memory = nullptr;
  dynamic_shared_bytes = 0;
  if (s.error) std::rethrow_exception(s.error);
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

inline void __syncthreads() { emu::detail::sync_threads(); }

template <typename T>
T atomicAdd(T* address, std::type_identity_t<T> value) {  // returns the old value, as CUDA's does
  return std::atomic_ref<T>(*address).fetch_add(value);  // (fibers of one thread: atomic anyway)
}
