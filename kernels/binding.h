// The pieces every PyTorch binding of the course's CUDA kernels shares
// (kernels/<family>/<family>_binding.cpp, kernels/streaming_binding.cpp): the stream Python passes as
// an integer (torch.cuda.current_stream().cuda_stream), typed pointers into tensors, and the check after
// every launch, so that a refused launch raises by name. The dispatch on the storage type stays in each
// binding: the dtypes differ by family. Header-only; the loaders put kernels/ on the include path.
#pragma once
#include <ATen/core/Tensor.h>
#include <cuda_runtime.h>

#include <string>

namespace course_binding {

inline cudaStream_t as_stream(int64_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

template <typename T>
const T* data(const at::Tensor& t) { return reinterpret_cast<const T*>(t.data_ptr()); }

template <typename T>
T* mutable_data(at::Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); }

// A launch the GPU refused (bad configuration, no kernel image for this device) raises, named.
inline void check_launch(const std::string& kernel) {
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess, kernel, ": the CUDA launch failed: ", cudaGetErrorString(error));
}

}  // namespace course_binding
