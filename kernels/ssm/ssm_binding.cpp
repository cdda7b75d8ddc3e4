// PyTorch binding of the sequence-model CUDA kernels: tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.ssm.scan.check_scan_args,
// course.ssm.selective.check_selective_scan_args and cuda_ssm.py) before they reach this file: inputs
// contiguous in one dtype (float32 or bfloat16), states, checkpoints and partial sums contiguous
// float32, an optional tensor passed as an empty one. Python passes the current CUDA stream as an
// integer (torch.cuda.current_stream().cuda_stream), so this file needs only the CPU headers of
// PyTorch. It includes the tensor and pybind11 headers alone, not <torch/extension.h>: it compiles four
// times faster. Python launches on the tensors' own device (torch.cuda.device in cuda_ssm.py); every
// launch is followed by check_launch, so a refused launch raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "ssm_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, check_launch

namespace {

// An optional tensor: null when Python passed an empty one.
template <typename T>
const T* optional_data(const at::Tensor& t) { return t.numel() ? data<T>(t) : nullptr; }

template <typename T>
T* optional_mutable_data(at::Tensor& t) { return t.numel() ? mutable_data<T>(t) : nullptr; }

// Calls body(storage type{}) for float32 and bfloat16 tensors (the dtypes the registry declares).
template <typename Body>
void by_dtype(const at::Tensor& t, Body body) {
  switch (t.scalar_type()) {
    case at::kFloat: body(float{}); break;
    case at::kBFloat16: body(__nv_bfloat16{}); break;
    default:
      TORCH_CHECK(false, "ssm CUDA kernels take float32 or bfloat16; got ", t.scalar_type());
  }
}

// float32, or empty (an optional output Python left out)
void check_float32_or_empty(const char* where, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.numel() == 0 || t.scalar_type() == at::kFloat, where, ": `", name, "` must be float32; got ",
              t.scalar_type());
}

}  // namespace

// h [B, T, D] of h_t = a_t h_{t-1} + x_t; `states` (float32 [B, T, D], or empty) keeps the float32 state.
at::Tensor scan_forward(at::Tensor a, at::Tensor x, at::Tensor h, at::Tensor states, int64_t stream) {
  check_float32_or_empty("scan_forward", "states", states);
  by_dtype(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_scan_forward<scalar_t>(data<scalar_t>(a), data<scalar_t>(x), mutable_data<scalar_t>(h),
                                  optional_mutable_data<float>(states), x.size(0), x.size(1), x.size(2),
                                  as_stream(stream));
    check_launch("scan_forward");
  });
  return h;
}

// da, dx [B, T, D] from dh and the forward's float32 states, by the reverse scan.
void scan_backward(at::Tensor a, at::Tensor states, at::Tensor dh, at::Tensor da, at::Tensor dx,
                   int64_t stream) {
  check_float32_or_empty("scan_backward", "states", states);
  by_dtype(a, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_scan_backward<scalar_t>(data<scalar_t>(a), data<float>(states), data<scalar_t>(dh),
                                   mutable_data<scalar_t>(da), mutable_data<scalar_t>(dx), a.size(0),
                                   a.size(1), a.size(2), as_stream(stream));
    check_launch("scan_backward");
  });
}

// y [B, T, D] of the selective scan; D and checkpoints may be empty.
at::Tensor selective_forward(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                             at::Tensor D, at::Tensor y, at::Tensor checkpoints, int64_t stream) {
  check_float32_or_empty("selective_forward", "checkpoints", checkpoints);
  TORCH_CHECK(A.size(1) <= kMaxState, "selective_forward: the state size N must be at most ", kMaxState,
              "; got ", A.size(1));
  by_dtype(u, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_selective_forward<scalar_t>(data<scalar_t>(u), data<scalar_t>(delta), data<scalar_t>(A),
                                       data<scalar_t>(B), data<scalar_t>(C), optional_data<scalar_t>(D),
                                       mutable_data<scalar_t>(y), optional_mutable_data<float>(checkpoints),
                                       u.size(0), u.size(1), u.size(2), A.size(1), as_stream(stream));
    check_launch("selective_forward");
  });
  return y;
}

// du, ddelta [B, T, D] and the float32 partial sums of dA, dB, dC, dD (see ssm_kernels.h).
void selective_backward(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                        at::Tensor D, at::Tensor checkpoints, at::Tensor dy, at::Tensor du,
                        at::Tensor ddelta, at::Tensor dA_part, at::Tensor dB_part, at::Tensor dC_part,
                        at::Tensor dD_part, int64_t stream) {
  check_float32_or_empty("selective_backward", "checkpoints", checkpoints);
  check_float32_or_empty("selective_backward", "dA_part", dA_part);
  check_float32_or_empty("selective_backward", "dB_part", dB_part);
  check_float32_or_empty("selective_backward", "dC_part", dC_part);
  check_float32_or_empty("selective_backward", "dD_part", dD_part);
  TORCH_CHECK(A.size(1) <= kMaxState, "selective_backward: the state size N must be at most ", kMaxState,
              "; got ", A.size(1));
  by_dtype(u, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_selective_backward<scalar_t>(
        data<scalar_t>(u), data<scalar_t>(delta), data<scalar_t>(A), data<scalar_t>(B), data<scalar_t>(C),
        optional_data<scalar_t>(D), data<float>(checkpoints), data<scalar_t>(dy), mutable_data<scalar_t>(du),
        mutable_data<scalar_t>(ddelta), mutable_data<float>(dA_part), mutable_data<float>(dB_part),
        mutable_data<float>(dC_part), optional_mutable_data<float>(dD_part), u.size(0), u.size(1), u.size(2),
        A.size(1), as_stream(stream));
    check_launch("selective_backward");
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward,
        "the diagonal linear scan, a thread per channel; keeps float32 states");
  m.def("scan_backward", &scan_backward, "its gradients of a and x by the reverse scan");
  m.def("selective_forward", &selective_forward,
        "Mamba's selective scan, the N states of a channel in registers; stores chunk checkpoints");
  m.def("selective_backward", &selective_backward,
        "its gradients by a reverse walk over chunks of recomputed states");
}
