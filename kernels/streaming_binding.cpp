// PyTorch binding of the streaming softmax / sparsemax kernels (streaming_softmax.cu): tensors in, launcher
// calls, tensors out. Arguments are checked in Python (the ops' checks, kernels/hopfield/host.py,
// kernels/diffusion/host.py, kernels/cuda_streaming.py) before they reach this file: rows contiguous in
// one dtype, temperatures and statistics contiguous float32 [N], outputs allocated. Python passes the
// current CUDA stream as an integer (torch.cuda.current_stream().cuda_stream), so this file needs only
// the CPU headers of PyTorch. It includes the tensor and pybind11 headers alone, not
// <torch/extension.h>: it compiles four times faster. Python launches on the tensors' own device
// (torch.cuda.device); every launch is followed by check_launch, so a refused launch raises here, by name.
// `sparse` selects the weighting: false for softmax (stats m, l), true for sparsemax (stats tau, and
// stat1 unused: pass tau again).
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "streaming_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, by_storage_type, check_float32,
                                 // check_launch

at::Tensor sparsemax_threshold(at::Tensor x, at::Tensor y, at::Tensor temperature, double norm_weight,
                               at::Tensor tau, int64_t stream) {
  check_float32("sparsemax_threshold", "temperature", temperature);
  check_float32("sparsemax_threshold", "tau", tau);
  TORCH_CHECK(y.size(0) >= 1 && y.size(0) <= kMaxSparseRows, "sparsemax_threshold: the kernel sorts one ",
              "row of logits on chip, so M must lie in [1, ", kMaxSparseRows, "]; got ", y.size(0));
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_sparsemax_threshold<scalar_t>(data<scalar_t>(x), data<scalar_t>(y), data<float>(temperature),
                                         static_cast<float>(norm_weight), mutable_data<float>(tau),
                                         x.size(0), y.size(0), x.size(1), as_stream(stream));
    check_launch("sparsemax_threshold");
  });
  return tau;
}

at::Tensor streaming_forward(at::Tensor x, at::Tensor y, at::Tensor temperature, double norm_weight,
                             bool sparse, at::Tensor stat0, at::Tensor stat1, at::Tensor out,
                             int64_t stream) {
  check_float32("streaming_forward", "temperature", temperature);
  check_float32("streaming_forward", "stat0", stat0);
  check_float32("streaming_forward", "stat1", stat1);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_streaming_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(y), data<float>(temperature),
                                       static_cast<float>(norm_weight), sparse, mutable_data<float>(stat0),
                                       mutable_data<float>(stat1), mutable_data<scalar_t>(out), x.size(0),
                                       y.size(0), x.size(1), as_stream(stream));
    check_launch("streaming_forward");
  });
  return out;
}

at::Tensor streaming_backward_x(at::Tensor x, at::Tensor y, at::Tensor temperature, double norm_weight,
                                bool sparse, at::Tensor stat0, at::Tensor stat1, at::Tensor grad,
                                at::Tensor grad_x, at::Tensor delta, int64_t stream) {
  check_float32("streaming_backward_x", "temperature", temperature);
  check_float32("streaming_backward_x", "stat0", stat0);
  check_float32("streaming_backward_x", "stat1", stat1);
  check_float32("streaming_backward_x", "delta", delta);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_streaming_backward_x<scalar_t>(data<scalar_t>(x), data<scalar_t>(y), data<float>(temperature),
                                          static_cast<float>(norm_weight), sparse, data<float>(stat0),
                                          data<float>(stat1), data<scalar_t>(grad),
                                          mutable_data<scalar_t>(grad_x), mutable_data<float>(delta),
                                          x.size(0), y.size(0), x.size(1), as_stream(stream));
    check_launch("streaming_backward_x");
  });
  return grad_x;
}

at::Tensor streaming_backward_y(at::Tensor x, at::Tensor y, at::Tensor temperature, double norm_weight,
                                bool sparse, at::Tensor stat0, at::Tensor stat1, at::Tensor delta,
                                at::Tensor grad, at::Tensor grad_y, int64_t stream) {
  check_float32("streaming_backward_y", "temperature", temperature);
  check_float32("streaming_backward_y", "stat0", stat0);
  check_float32("streaming_backward_y", "stat1", stat1);
  check_float32("streaming_backward_y", "delta", delta);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_streaming_backward_y<scalar_t>(data<scalar_t>(x), data<scalar_t>(y), data<float>(temperature),
                                          static_cast<float>(norm_weight), sparse, data<float>(stat0),
                                          data<float>(stat1), data<float>(delta), data<scalar_t>(grad),
                                          mutable_data<scalar_t>(grad_y), x.size(0), y.size(0), x.size(1),
                                          as_stream(stream));
    check_launch("streaming_backward_y");
  });
  return grad_y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("sparsemax_threshold", &sparsemax_threshold, "tau [N] of each query's sorted row of logits");
  m.def("streaming_forward", &streaming_forward,
        "out = sum_j p_ij y_j, softmax (writes m, l) or sparsemax (reads tau) weights, one sweep");
  m.def("streaming_backward_x", &streaming_backward_x, "the queries' gradient in two sweeps; writes delta");
  m.def("streaming_backward_y", &streaming_backward_y, "the stored rows' gradient, a loop over the queries");
}
