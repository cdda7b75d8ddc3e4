// PyTorch binding of the landscape CUDA kernels: tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.landscape.grid.check_grid_loss_args and cuda_landscape.py)
// before they reach this file: x [N, I], theta, d1, d2 [P] contiguous in one dtype, labels [N] int64,
// coords [G, 2] float32, both float32 buffers of at least chunk * N * max(widths[1:]) elements. Python
// passes the current CUDA stream as an integer (torch.cuda.current_stream().cuda_stream), so this file
// needs only the CPU headers of PyTorch. It includes the tensor and pybind11 headers alone, not
// <torch/extension.h>: it compiles four times faster. Python launches on the tensors' own device
// (torch.cuda.device in cuda_landscape.py); every launch is followed by check_launch, so a refused launch
// raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <string>
#include <vector>

#include "binding.h"
#include "landscape_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, check_launch

namespace {

// Calls body(storage type{}) for float32 and bfloat16 tensors (the dtypes the registry declares).
template <typename Body>
void by_dtype(const at::Tensor& t, Body body) {
  switch (t.scalar_type()) {
    case at::kFloat: body(float{}); break;
    case at::kBFloat16: body(__nv_bfloat16{}); break;
    default:
      TORCH_CHECK(false, "landscape CUDA kernels take float32 or bfloat16; got ", t.scalar_type());
  }
}

void check_dtype(const char* name, const at::Tensor& t, at::ScalarType dtype) {
  TORCH_CHECK(t.scalar_type() == dtype, "grid_loss: `", name, "` must be ", dtype, "; got ", t.scalar_type());
}

}  // namespace

// The losses [G] of the MLP of `widths` at the grid points theta + coords[g, 0] d1 + coords[g, 1] d2,
// `chunk` grid points at a time: one perturbed_layer launch per layer (ReLU after all but the last),
// the activations ping-ponging between buffer_a and buffer_b, then one cross_entropy launch.
at::Tensor grid_loss(at::Tensor x, at::Tensor labels, at::Tensor theta, at::Tensor d1, at::Tensor d2,
                     at::Tensor coords, std::vector<int64_t> widths, at::Tensor buffer_a,
                     at::Tensor buffer_b, at::Tensor losses, int64_t chunk, int64_t stream) {
  check_dtype("labels", labels, at::kLong);
  check_dtype("coords", coords, at::kFloat);
  check_dtype("buffer_a", buffer_a, at::kFloat);
  check_dtype("buffer_b", buffer_b, at::kFloat);
  TORCH_CHECK(widths.size() >= 2, "grid_loss: `widths` must name at least an input and an output width");
  TORCH_CHECK(chunk > 0, "grid_loss: `chunk` must be positive; got ", chunk);
  const int64_t G = coords.size(0), N = x.size(0);
  const int layers = static_cast<int>(widths.size()) - 1;
  by_dtype(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    float* buffers[2] = {mutable_data<float>(buffer_a), mutable_data<float>(buffer_b)};
    for (int64_t g0 = 0; g0 < G; g0 += chunk) {
      const int64_t points = std::min(chunk, G - g0);
      const float* point_coords = data<float>(coords) + 2 * g0;
      int64_t offset = 0;  // of this layer's W in theta, d1 and d2
      for (int l = 0; l < layers; ++l) {
        const int64_t fan_in = widths[l], fan_out = widths[l + 1];
        float* out = buffers[l % 2];
        const scalar_t* w0 = data<scalar_t>(theta) + offset;
        const scalar_t* w1 = data<scalar_t>(d1) + offset;
        const scalar_t* w2 = data<scalar_t>(d2) + offset;
        const bool relu = l < layers - 1;
        if (l == 0) {
          launch_perturbed_layer<scalar_t, scalar_t>(data<scalar_t>(x), 0, w0, w1, w2, point_coords, out,
                                                     points, N, fan_in, fan_out, relu, as_stream(stream));
        } else {
          launch_perturbed_layer<scalar_t, float>(buffers[(l - 1) % 2], N * fan_in, w0, w1, w2, point_coords,
                                                  out, points, N, fan_in, fan_out, relu, as_stream(stream));
        }
        check_launch("perturbed_layer " + std::to_string(l));
        offset += fan_out * fan_in + fan_out;
      }
      launch_cross_entropy<scalar_t>(buffers[(layers - 1) % 2], data<int64_t>(labels),
                                     mutable_data<scalar_t>(losses) + g0, points, N, widths.back(),
                                     as_stream(stream));
      check_launch("cross_entropy");
    }
  });
  return losses;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("grid_loss", &grid_loss,
        "the mean cross-entropy of an MLP at G grid points, the perturbation fused into each layer's matmul");
}
