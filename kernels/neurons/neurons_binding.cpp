// PyTorch binding of the neuron-model CUDA kernels (neurons_rational.cu, neurons_kan.cu, neurons_phm.cu):
// tensors in, launcher calls, tensors out. Arguments are checked in Python
// (course.neurons.rational.check_rational_args, course.neurons.kan.check_kan_linear_args,
// course.neurons.phm.check_phm_args, and the kernels' limits in cuda_neurons.py) before they reach this
// file: inputs contiguous in one dtype (float32, float16 or bfloat16), partial sums and workspaces
// contiguous float32. Python passes the current CUDA stream as an integer
// (torch.cuda.current_stream().cuda_stream), so this file needs only the CPU headers of PyTorch. It
// includes the tensor and pybind11 headers alone, not <torch/extension.h>: it compiles four times faster.
// Python launches on the tensors' own device (torch.cuda.device via course.kernels.launch.on_device);
// every launch is followed by check_launch, so a refused launch raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "neurons_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, by_storage_type, check_float32,
                                 // check_launch

// y [E] = P(x) / (1 + |S(x)|).
at::Tensor rational_forward(at::Tensor x, at::Tensor numerator, at::Tensor denominator, at::Tensor y,
                            int64_t stream) {
  const int64_t m = numerator.numel() - 1, n = denominator.numel();
  TORCH_CHECK(m >= 0 && m < kMaxNumerator && n <= kMaxDenominator, "rational_forward: degrees (", m, ", ", n,
              ") past the kernel's (", kMaxNumerator - 1, ", ", kMaxDenominator, ")");
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_rational_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(numerator),
                                      data<scalar_t>(denominator), mutable_data<scalar_t>(y), x.numel(),
                                      static_cast<int>(m), static_cast<int>(n), as_stream(stream));
    check_launch("rational_forward");
  });
  return y;
}

// The number of blocks (rows of the partial sums) of the backward on E elements.
int64_t rational_backward_rows(int64_t E) { return rational_backward_blocks(E); }

// grad_x [E] and the float32 partial sums [blocks, m + 1 + n] of the coefficients' gradients.
void rational_backward(at::Tensor x, at::Tensor numerator, at::Tensor denominator, at::Tensor grad,
                       at::Tensor grad_x, at::Tensor partial, int64_t stream) {
  const int64_t m = numerator.numel() - 1, n = denominator.numel(), E = x.numel();
  TORCH_CHECK(m >= 0 && m < kMaxNumerator && n <= kMaxDenominator, "rational_backward: degrees (", m, ", ",
              n, ") past the kernel's (", kMaxNumerator - 1, ", ", kMaxDenominator, ")");
  check_float32("rational_backward", "partial", partial);
  TORCH_CHECK(partial.dim() == 2 && partial.size(0) == rational_backward_blocks(E) &&
                  partial.size(1) == m + 1 + n,
              "rational_backward: `partial` must be [", rational_backward_blocks(E), ", ", m + 1 + n, "]");
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_rational_backward<scalar_t>(data<scalar_t>(x), data<scalar_t>(numerator),
                                       data<scalar_t>(denominator), data<scalar_t>(grad),
                                       mutable_data<scalar_t>(grad_x), mutable_data<float>(partial), E,
                                       static_cast<int>(m), static_cast<int>(n), as_stream(stream));
    check_launch("rational_backward");
  });
}

// y [B, O] of the KAN layer; coef [I, G + 3, O].
at::Tensor kan_forward(at::Tensor x, at::Tensor base, at::Tensor coef, double grid_range, at::Tensor y,
                       int64_t stream) {
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_kan_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(base), data<scalar_t>(coef),
                                 mutable_data<scalar_t>(y), x.size(0), x.size(1), base.size(1),
                                 coef.size(1) - 3, static_cast<float>(grid_range), as_stream(stream));
    check_launch("kan_forward");
  });
  return y;
}

// grad_x [B, I], grad_base [I, O], grad_coef [I, G + 3, O] from grad [B, O].
void kan_backward(at::Tensor x, at::Tensor base, at::Tensor coef, double grid_range, at::Tensor grad,
                  at::Tensor grad_x, at::Tensor grad_base, at::Tensor grad_coef, int64_t stream) {
  const int64_t B = x.size(0), I = x.size(1), O = base.size(1), G = coef.size(1) - 3;
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_kan_backward_input<scalar_t>(data<scalar_t>(x), data<scalar_t>(base), data<scalar_t>(coef),
                                        data<scalar_t>(grad), mutable_data<scalar_t>(grad_x), B, I, O, G,
                                        static_cast<float>(grid_range), as_stream(stream));
    check_launch("kan_backward_input");
    launch_kan_backward_params<scalar_t>(data<scalar_t>(x), data<scalar_t>(grad),
                                         mutable_data<scalar_t>(grad_base), mutable_data<scalar_t>(grad_coef),
                                         B, I, O, G, static_cast<float>(grid_range), as_stream(stream));
    check_launch("kan_backward_params");
  });
}

// y [B, O] = x (sum_i A_i (x) F_i), W never formed.
at::Tensor phm_forward(at::Tensor x, at::Tensor A, at::Tensor F, at::Tensor y, int64_t stream) {
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_phm_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(A), data<scalar_t>(F),
                                 mutable_data<scalar_t>(y), x.size(0), A.size(0), F.size(1), F.size(2),
                                 as_stream(stream));
    check_launch("phm_forward");
  });
  return y;
}

// grad_x [B, I], grad_A [n, n, n], grad_F [n, I / n, O / n] through the float32 workspace grad_W [I, O].
void phm_backward(at::Tensor x, at::Tensor A, at::Tensor F, at::Tensor grad, at::Tensor grad_x,
                  at::Tensor grad_A, at::Tensor grad_F, at::Tensor grad_W, int64_t stream) {
  check_float32("phm_backward", "grad_W", grad_W);
  const int64_t B = x.size(0), n = A.size(0), In = F.size(1), On = F.size(2);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_phm_backward_input<scalar_t>(data<scalar_t>(grad), data<scalar_t>(A), data<scalar_t>(F),
                                        mutable_data<scalar_t>(grad_x), B, n, In, On, as_stream(stream));
    check_launch("phm_backward_input");
    launch_phm_grad_weight<scalar_t>(data<scalar_t>(x), data<scalar_t>(grad), mutable_data<float>(grad_W), B,
                                     n * In, n * On, as_stream(stream));
    check_launch("phm_grad_weight");
    launch_phm_grad_rules<scalar_t>(data<scalar_t>(F), data<float>(grad_W), mutable_data<scalar_t>(grad_A), n,
                                    In, On, as_stream(stream));
    check_launch("phm_grad_rules");
    launch_phm_grad_weights<scalar_t>(data<scalar_t>(A), data<float>(grad_W), mutable_data<scalar_t>(grad_F),
                                      n, In, On, as_stream(stream));
    check_launch("phm_grad_weights");
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("rational_forward", &rational_forward, "the safe rational activation by Horner's rule, elementwise");
  m.def("rational_backward_rows", &rational_backward_rows, "the backward's blocks (partial-sum rows) for E");
  m.def("rational_backward", &rational_backward,
        "its gradients: grad_x, and the coefficients' per-block float32 partial sums");
  m.def("kan_forward", &kan_forward, "the cubic B-spline KAN layer, the basis on chip");
  m.def("kan_backward", &kan_backward, "its gradients of x, base and coef, sums in a fixed order");
  m.def("phm_forward", &phm_forward, "the PHM layer, W = sum_i A_i (x) F_i never formed");
  m.def("phm_backward", &phm_backward, "its gradients of x, A and F through grad_W = x^T grad");
}
