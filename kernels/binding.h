// The pieces every PyTorch binding of the course's CUDA kernels shares
// (kernels/<family>/<family>_binding.cpp, kernels/streaming_binding.cpp): the stream Python passes as
// an integer (torch.cuda.current_stream().cuda_stream), typed pointers into tensors, and the check after
// every launch, so that a refused launch raises by name; the dispatch on the three storage types and the
// float32 check of levels and statistics. Families built for fewer types (float32 and bfloat16) keep their
// own dispatch. Header-only; the loaders put kernels/ on the include path.
#pragma once
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

namespace course_binding {

inline cudaStream_t as_stream(int64_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

template <typename T>
const T* data(const at::Tensor& t) { return reinterpret_cast<const T*>(t.data_ptr()); }

template <typename T>
T* mutable_data(at::Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); }

// Calls body(storage type{}) for float32, float16 and bfloat16 tensors (the kernels compute in float32).
// The hosts refuse other dtypes by name before a launch; this is the binding's own guard.
template <typename Body>
void by_storage_type(const at::Tensor& t, Body body) {
  switch (t.scalar_type()) {
    case at::kFloat: body(float{}); break;
    case at::kHalf: body(__half{}); break;
    case at::kBFloat16: body(__nv_bfloat16{}); break;
    default:
      TORCH_CHECK(false, "these CUDA kernels take float32, float16 or bfloat16; got ", t.scalar_type());
  }
}

inline void check_float32(const char* where, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, where, ": `", name, "` must be float32; got ", t.scalar_type());
}

// A launch the GPU refused (bad configuration, no kernel image for this device) raises, named.
inline void check_launch(const std::string& kernel) {
  const cudaError_t error = cudaGetLastError();
  TORCH_CHECK(error == cudaSuccess, kernel, ": the CUDA launch failed: ", cudaGetErrorString(error));
}

}  // namespace course_binding
