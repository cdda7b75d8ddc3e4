// The part of the CUDA runtime API that the project's kernels and launchers use, for the CPU emulator
// (see ../emulator.h). Only types: launches are rewritten to emu::launch, which runs on the CPU.
#pragma once
#include <cstddef>

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

typedef struct CUstream_st* cudaStream_t;  // opaque, as in CUDA; the emulator ignores streams

enum cudaError_t { cudaSuccess = 0 };  // a bad launch throws (std::invalid_argument) instead
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
