// PyTorch binding of the diffusion CUDA kernels (the Heun step and EDM's preconditioning; the ideal
// denoiser runs the shared kernels/streaming_binding.cpp): tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.diffusion.samplers.check_heun_step_args,
// course.diffusion.edm.check_edm_output_args and kernels/diffusion/host.py) before they reach this
// file: rows contiguous in one dtype, levels contiguous float32 [N]. Python passes the current CUDA
// stream as an integer (torch.cuda.current_stream().cuda_stream), so this file needs only the CPU
// headers of PyTorch. It includes the tensor and pybind11 headers alone, not <torch/extension.h>: it
// compiles four times faster. Python launches on the tensors' own device (torch.cuda.device in
// cuda_diffusion.py); every launch is followed by check_launch, so a refused launch raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "diffusion_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, by_storage_type, check_float32,
                                 // check_launch

at::Tensor heun_forward(at::Tensor x, at::Tensor denoised, at::Tensor denoised_next, at::Tensor noise,
                        at::Tensor sigma, at::Tensor sigma_next, at::Tensor sigma_next_hat, at::Tensor out,
                        int64_t stream) {
  check_float32("heun_forward", "sigma", sigma);
  check_float32("heun_forward", "sigma_next", sigma_next);
  check_float32("heun_forward", "sigma_next_hat", sigma_next_hat);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_heun_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(denoised), data<scalar_t>(denoised_next),
                                  data<scalar_t>(noise), data<float>(sigma), data<float>(sigma_next),
                                  data<float>(sigma_next_hat), mutable_data<scalar_t>(out), x.size(0),
                                  x.size(1), as_stream(stream));
    check_launch("heun_forward");
  });
  return out;
}

void heun_backward(at::Tensor grad, at::Tensor sigma, at::Tensor sigma_next, at::Tensor sigma_next_hat,
                   at::Tensor grad_x, at::Tensor grad_denoised, at::Tensor grad_denoised_next,
                   at::Tensor grad_noise, int64_t stream) {
  check_float32("heun_backward", "sigma", sigma);
  check_float32("heun_backward", "sigma_next", sigma_next);
  check_float32("heun_backward", "sigma_next_hat", sigma_next_hat);
  by_storage_type(grad, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_heun_backward<scalar_t>(data<scalar_t>(grad), data<float>(sigma), data<float>(sigma_next),
                                   data<float>(sigma_next_hat), mutable_data<scalar_t>(grad_x),
                                   mutable_data<scalar_t>(grad_denoised),
                                   mutable_data<scalar_t>(grad_denoised_next),
                                   mutable_data<scalar_t>(grad_noise), grad.size(0), grad.size(1),
                                   as_stream(stream));
    check_launch("heun_backward");
  });
}

at::Tensor edm_forward(at::Tensor x, at::Tensor raw, at::Tensor sigma, at::Tensor out, double sigma_data,
                       int64_t stream) {
  check_float32("edm_forward", "sigma", sigma);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_edm_forward<scalar_t>(data<scalar_t>(x), data<scalar_t>(raw), data<float>(sigma),
                                 mutable_data<scalar_t>(out), x.size(0), x.size(1),
                                 static_cast<float>(sigma_data), static_cast<float>(sigma_data * sigma_data),
                                 as_stream(stream));
    check_launch("edm_forward");
  });
  return out;
}

void edm_backward(at::Tensor grad, at::Tensor sigma, at::Tensor grad_x, at::Tensor grad_raw,
                  double sigma_data, int64_t stream) {
  check_float32("edm_backward", "sigma", sigma);
  by_storage_type(grad, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_edm_backward<scalar_t>(data<scalar_t>(grad), data<float>(sigma), mutable_data<scalar_t>(grad_x),
                                  mutable_data<scalar_t>(grad_raw), grad.size(0), grad.size(1),
                                  static_cast<float>(sigma_data), static_cast<float>(sigma_data * sigma_data),
                                  as_stream(stream));
    check_launch("edm_backward");
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("heun_forward", &heun_forward, "one fused step of EDM's Algorithm 2");
  m.def("heun_backward", &heun_backward, "the step's gradients of x, denoised, denoised_next and noise");
  m.def("edm_forward", &edm_forward, "EDM's preconditioning after the network, c_skip x + c_out raw");
  m.def("edm_backward", &edm_backward, "its gradients of x and raw");
}
