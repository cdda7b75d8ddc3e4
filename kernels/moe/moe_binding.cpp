// PyTorch binding of the MoE CUDA kernels: tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.moe.dispatch.check_*_args) before they reach this file, and
// Python passes the current CUDA stream as an integer (torch.cuda.current_stream().cuda_stream), so
// this file needs only the CPU headers of PyTorch and can be syntax-checked on a machine without a GPU.
// It includes the tensor and pybind11 headers alone, not <torch/extension.h> (the whole C++ frontend):
// it compiles four times faster. Python launches on the tensors' own device (torch.cuda.device in
// cuda_moe.py); every launch is followed by check_launch, so a refused launch raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "moe_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, by_storage_type, check_float32,
                                 // check_launch

namespace {

template <typename scalar_t>
const scalar_t* ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? reinterpret_cast<const scalar_t*>(t->data_ptr()) : nullptr;
}

Epilogue epilogue_named(const std::string& name) {
  if (name == "none") return Epilogue::kNone;
  if (name == "relu") return Epilogue::kRelu;
  if (name == "relu_grad") return Epilogue::kReluGrad;
  TORCH_CHECK(false, "grouped_matmul: `epilogue` must be 'none', 'relu' or 'relu_grad'; got '", name, "'");
}

void check_float32(const char* where, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, where, " takes float32 tensors; got ", t.scalar_type());
}

}  // namespace

at::Tensor expert_histogram(at::Tensor expert_index, int64_t E, at::Tensor hist,
                               int64_t stream) {
  launch_expert_histogram(expert_index.data_ptr<int64_t>(), hist.data_ptr<int64_t>(),
                          expert_index.size(0), expert_index.size(1), E, as_stream(stream));
  check_launch("expert_histogram");
  return hist;
}

at::Tensor dispatch_slot(at::Tensor expert_index, at::Tensor base, at::Tensor counts,
                            at::Tensor offsets, at::Tensor slot, int64_t stream) {
  launch_dispatch_slot(expert_index.data_ptr<int64_t>(), base.data_ptr<int64_t>(),
                       counts.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                       slot.data_ptr<int64_t>(), expert_index.size(0), expert_index.size(1),
                       counts.size(0), as_stream(stream));
  check_launch("dispatch_slot");
  return slot;
}

at::Tensor scatter_rows(at::Tensor src, at::Tensor slot, std::optional<at::Tensor> weight,
                           at::Tensor out, int64_t stream) {
  by_storage_type(src, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_scatter_rows<scalar_t>(reinterpret_cast<const scalar_t*>(src.data_ptr()),
                                  slot.data_ptr<int64_t>(), ptr_or_null<scalar_t>(weight),
                                  reinterpret_cast<scalar_t*>(out.data_ptr()), slot.size(0),
                                  slot.size(1), src.size(1), as_stream(stream));
    check_launch("scatter_rows");
  });
  return out;
}

at::Tensor gather_rows(at::Tensor src, at::Tensor slot, std::optional<at::Tensor> weight,
                          at::Tensor out, int64_t stream) {
  by_storage_type(src, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_gather_rows<scalar_t>(reinterpret_cast<const scalar_t*>(src.data_ptr()),
                                 slot.data_ptr<int64_t>(), ptr_or_null<scalar_t>(weight),
                                 reinterpret_cast<scalar_t*>(out.data_ptr()), slot.size(0),
                                 slot.size(1), src.size(1), as_stream(stream));
    check_launch("gather_rows");
  });
  return out;
}

at::Tensor row_dot(at::Tensor a, at::Tensor src, at::Tensor slot, at::Tensor out,
                      int64_t stream) {
  by_storage_type(a, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_row_dot<scalar_t>(reinterpret_cast<const scalar_t*>(a.data_ptr()),
                             reinterpret_cast<const scalar_t*>(src.data_ptr()),
                             slot.data_ptr<int64_t>(), reinterpret_cast<scalar_t*>(out.data_ptr()),
                             slot.size(0), slot.size(1), a.size(1), as_stream(stream));
    check_launch("row_dot");
  });
  return out;
}

at::Tensor grouped_matmul(at::Tensor a, at::Tensor w, std::optional<at::Tensor> gate,
                             at::Tensor tile_expert, at::Tensor tile_start, at::Tensor tile_end,
                             std::string epilogue, at::Tensor out, int64_t stream) {
  check_float32("grouped_matmul", a);
  check_float32("grouped_matmul", w);
  launch_grouped_matmul(a.data_ptr<float>(), w.data_ptr<float>(), ptr_or_null<float>(gate),
                        out.data_ptr<float>(), tile_expert.data_ptr<int64_t>(),
                        tile_start.data_ptr<int64_t>(), tile_end.data_ptr<int64_t>(), tile_expert.size(0),
                        a.size(1), w.size(2), w.stride(0), w.stride(1), w.stride(2),
                        epilogue_named(epilogue), as_stream(stream));
  check_launch("grouped_matmul");
  return out;
}

at::Tensor grouped_weight_grad(at::Tensor a, at::Tensor b, at::Tensor offsets,
                                  at::Tensor grad_w, int64_t stream) {
  check_float32("grouped_weight_grad", a);
  check_float32("grouped_weight_grad", b);
  launch_grouped_weight_grad(a.data_ptr<float>(), b.data_ptr<float>(), offsets.data_ptr<int64_t>(),
                             grad_w.data_ptr<float>(), grad_w.size(0), grad_w.size(1), grad_w.size(2),
                             as_stream(stream));
  check_launch("grouped_weight_grad");
  return grad_w;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("expert_histogram", &expert_histogram, "per-chunk expert histogram (counting sort, step 1)");
  m.def("dispatch_slot", &dispatch_slot, "slot of every assignment (counting sort, step 3)");
  m.def("scatter_rows", &scatter_rows, "out[slot[t, j]] = w[t, j] src[t]");
  m.def("gather_rows", &gather_rows, "out[t] = sum_j w[t, j] src[slot[t, j]]");
  m.def("row_dot", &row_dot, "out[t, j] = <a[t], src[slot[t, j]]>");
  m.def("grouped_matmul", &grouped_matmul, "out[rows of e] = epilogue(a[rows of e] W_e) (grouped GEMM)");
  m.def("grouped_weight_grad", &grouped_weight_grad, "grad_w[e] = a[rows of e]^T b[rows of e]");
}
