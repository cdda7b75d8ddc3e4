// PyTorch binding of the MoE CUDA kernels: tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.moe.dispatch.check_*_args) before they reach this file, and
// Python passes the current CUDA stream as an integer (torch.cuda.current_stream().cuda_stream), so
// this file needs only the CPU headers of PyTorch and can be syntax-checked on a machine without a GPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/extension.h>

#include "moe_kernels.h"

namespace {

cudaStream_t as_stream(int64_t stream) { return reinterpret_cast<cudaStream_t>(stream); }

template <typename scalar_t>
const scalar_t* ptr_or_null(const std::optional<torch::Tensor>& t) {
  return t.has_value() ? reinterpret_cast<const scalar_t*>(t->data_ptr()) : nullptr;
}

// Calls body<storage type>() for float32, float16 and bfloat16 tensors.
template <typename Body>
void by_dtype(const torch::Tensor& t, Body body) {
  switch (t.scalar_type()) {
    case torch::kFloat: body(float{}); break;
    case torch::kHalf: body(__half{}); break;
    case torch::kBFloat16: body(__nv_bfloat16{}); break;
    default: TORCH_CHECK(false, "MoE CUDA kernels take float32, float16 or bfloat16; got ", t.scalar_type());
  }
}

Epilogue epilogue_named(const std::string& name) {
  if (name == "none") return Epilogue::kNone;
  if (name == "relu") return Epilogue::kRelu;
  if (name == "relu_grad") return Epilogue::kReluGrad;
  TORCH_CHECK(false, "grouped_matmul: `epilogue` must be 'none', 'relu' or 'relu_grad'; got '", name, "'");
}

void check_float32(const char* where, const torch::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat, where, " takes float32 tensors; got ", t.scalar_type());
}

}  // namespace

torch::Tensor expert_histogram(torch::Tensor expert_index, int64_t E, torch::Tensor hist,
                               int64_t stream) {
  launch_expert_histogram(expert_index.data_ptr<int64_t>(), hist.data_ptr<int64_t>(),
                          expert_index.size(0), expert_index.size(1), E, as_stream(stream));
  return hist;
}

torch::Tensor dispatch_slot(torch::Tensor expert_index, torch::Tensor base, torch::Tensor counts,
                            torch::Tensor offsets, torch::Tensor slot, int64_t stream) {
  launch_dispatch_slot(expert_index.data_ptr<int64_t>(), base.data_ptr<int64_t>(),
                       counts.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                       slot.data_ptr<int64_t>(), expert_index.size(0), expert_index.size(1),
                       counts.size(0), as_stream(stream));
  return slot;
}

torch::Tensor scatter_rows(torch::Tensor src, torch::Tensor slot, std::optional<torch::Tensor> weight,
                           torch::Tensor out, int64_t stream) {
  by_dtype(src, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_scatter_rows<scalar_t>(reinterpret_cast<const scalar_t*>(src.data_ptr()),
                                  slot.data_ptr<int64_t>(), ptr_or_null<scalar_t>(weight),
                                  reinterpret_cast<scalar_t*>(out.data_ptr()), slot.size(0),
                                  slot.size(1), src.size(1), as_stream(stream));
  });
  return out;
}

torch::Tensor gather_rows(torch::Tensor src, torch::Tensor slot, std::optional<torch::Tensor> weight,
                          torch::Tensor out, int64_t stream) {
  by_dtype(src, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_gather_rows<scalar_t>(reinterpret_cast<const scalar_t*>(src.data_ptr()),
                                 slot.data_ptr<int64_t>(), ptr_or_null<scalar_t>(weight),
                                 reinterpret_cast<scalar_t*>(out.data_ptr()), slot.size(0),
                                 slot.size(1), src.size(1), as_stream(stream));
  });
  return out;
}

torch::Tensor row_dot(torch::Tensor a, torch::Tensor src, torch::Tensor slot, torch::Tensor out,
                      int64_t stream) {
  by_dtype(a, [&](auto zero) {
    using scalar_t = decltype(zero);
    launch_row_dot<scalar_t>(reinterpret_cast<const scalar_t*>(a.data_ptr()),
                             reinterpret_cast<const scalar_t*>(src.data_ptr()),
                             slot.data_ptr<int64_t>(), reinterpret_cast<scalar_t*>(out.data_ptr()),
                             slot.size(0), slot.size(1), a.size(1), as_stream(stream));
  });
  return out;
}

torch::Tensor grouped_matmul(torch::Tensor a, torch::Tensor w, std::optional<torch::Tensor> gate,
                             torch::Tensor tile_expert, torch::Tensor tile_start, torch::Tensor tile_end,
                             std::string epilogue, torch::Tensor out, int64_t stream) {
  check_float32("grouped_matmul", a);
  check_float32("grouped_matmul", w);
  launch_grouped_matmul(a.data_ptr<float>(), w.data_ptr<float>(), ptr_or_null<float>(gate),
                        out.data_ptr<float>(), tile_expert.data_ptr<int64_t>(),
                        tile_start.data_ptr<int64_t>(), tile_end.data_ptr<int64_t>(), tile_expert.size(0),
                        a.size(1), w.size(2), w.stride(0), w.stride(1), w.stride(2),
                        epilogue_named(epilogue), as_stream(stream));
  return out;
}

torch::Tensor grouped_weight_grad(torch::Tensor a, torch::Tensor b, torch::Tensor offsets,
                                  torch::Tensor grad_w, int64_t stream) {
  check_float32("grouped_weight_grad", a);
  check_float32("grouped_weight_grad", b);
  launch_grouped_weight_grad(a.data_ptr<float>(), b.data_ptr<float>(), offsets.data_ptr<int64_t>(),
                             grad_w.data_ptr<float>(), grad_w.size(0), grad_w.size(1), grad_w.size(2),
                             as_stream(stream));
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
