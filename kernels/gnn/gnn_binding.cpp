// PyTorch binding of the graph CUDA kernels: tensors in, launcher calls, tensors out.
// Arguments are checked in Python (course.gnn.spmm.check_spmm_args, course.gnn.attention.check_gat_args
// and kernels/gnn/host.py) before they reach this file; Python passes the current CUDA stream as an
// integer (torch.cuda.current_stream().cuda_stream), so this file needs only the CPU headers of PyTorch.
// It includes the tensor and pybind11 headers alone, not <torch/extension.h>: it compiles four times
// faster. Python launches on the tensors' own device (torch.cuda.device in cuda_gnn.py); every launch
// is followed by check_launch, so a refused launch raises here, by name.
#include <ATen/core/Tensor.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <torch/csrc/utils/pybind.h>

#include "binding.h"
#include "gnn_kernels.h"

using namespace course_binding;  // as_stream, data, mutable_data, by_storage_type, check_float32,
                                 // check_launch

namespace {

// Calls body(index type{}) for int32 and int64 index tensors; both of a pair must have one type.
template <typename Body>
void by_index(const at::Tensor& ptr, const at::Tensor& index, Body body) {
  TORCH_CHECK(ptr.scalar_type() == index.scalar_type(), "graph CUDA kernels take offsets and indices "
              "of one type; got ", ptr.scalar_type(), " and ", index.scalar_type());
  switch (index.scalar_type()) {
    case at::kInt: body(int32_t{}); break;
    case at::kLong: body(int64_t{}); break;
    default: TORCH_CHECK(false, "graph CUDA kernels take int32 or int64 indices; got ", index.scalar_type());
  }
}

}  // namespace

at::Tensor spmm(at::Tensor rowptr, at::Tensor col, at::Tensor x, std::optional<at::Tensor> weight,
                at::Tensor out, int64_t heads, int64_t stream) {
  if (weight.has_value()) check_float32("spmm", "weight", *weight);
  const int64_t D = x.size(1);
  by_storage_type(x, [&](auto zero) {
    using scalar_t = decltype(zero);
    by_index(rowptr, col, [&](auto index_zero) {
      using index_t = decltype(index_zero);
      launch_spmm<scalar_t, index_t>(data<index_t>(rowptr), data<index_t>(col), data<scalar_t>(x),
                                     weight.has_value() ? data<float>(*weight) : nullptr,
                                     mutable_data<scalar_t>(out), rowptr.size(0) - 1, D, D / heads,
                                     heads, as_stream(stream));
      check_launch("spmm");
    });
  });
  return out;
}

at::Tensor edge_dot(at::Tensor dst, at::Tensor col, at::Tensor a, at::Tensor b, at::Tensor out,
                    int64_t stream) {
  check_float32("edge_dot", "out", out);
  const int64_t H = out.size(1);
  by_storage_type(a, [&](auto zero) {
    using scalar_t = decltype(zero);
    by_index(dst, col, [&](auto index_zero) {
      using index_t = decltype(index_zero);
      launch_edge_dot<scalar_t, index_t>(data<index_t>(dst), data<index_t>(col), data<scalar_t>(a),
                                         data<scalar_t>(b), mutable_data<float>(out), col.size(0), H,
                                         H > 0 ? a.size(1) / H : 0, as_stream(stream));
      check_launch("edge_dot");
    });
  });
  return out;
}

at::Tensor gat_forward(at::Tensor rowptr, at::Tensor col, at::Tensor h, at::Tensor a_src,
                       at::Tensor a_dst, at::Tensor out, at::Tensor lse, double negative_slope,
                       int64_t stream) {
  check_float32("gat_forward", "lse", lse);
  by_storage_type(h, [&](auto zero) {
    using scalar_t = decltype(zero);
    by_index(rowptr, col, [&](auto index_zero) {
      using index_t = decltype(index_zero);
      launch_gat_forward<scalar_t, index_t>(data<index_t>(rowptr), data<index_t>(col), data<scalar_t>(h),
                                            data<scalar_t>(a_src), data<scalar_t>(a_dst),
                                            mutable_data<scalar_t>(out), mutable_data<float>(lse),
                                            rowptr.size(0) - 1, h.size(1), h.size(2),
                                            static_cast<float>(negative_slope), as_stream(stream));
      check_launch("gat_forward");
    });
  });
  return out;
}

at::Tensor gat_backward(at::Tensor rowptr, at::Tensor col, at::Tensor a_src, at::Tensor a_dst,
                        at::Tensor lse, at::Tensor dot, at::Tensor alpha, at::Tensor dz,
                        at::Tensor grad_dst, double negative_slope, int64_t stream) {
  check_float32("gat_backward", "lse", lse);
  check_float32("gat_backward", "dot", dot);
  check_float32("gat_backward", "alpha", alpha);
  check_float32("gat_backward", "dz", dz);
  check_float32("gat_backward", "grad_dst", grad_dst);
  by_storage_type(a_src, [&](auto zero) {
    using scalar_t = decltype(zero);
    by_index(rowptr, col, [&](auto index_zero) {
      using index_t = decltype(index_zero);
      launch_gat_backward<scalar_t, index_t>(data<index_t>(rowptr), data<index_t>(col),
                                             data<scalar_t>(a_src), data<scalar_t>(a_dst),
                                             data<float>(lse), data<float>(dot), mutable_data<float>(alpha),
                                             mutable_data<float>(dz), mutable_data<float>(grad_dst),
                                             rowptr.size(0) - 1, a_src.size(1),
                                             static_cast<float>(negative_slope), as_stream(stream));
      check_launch("gat_backward");
    });
  });
  return grad_dst;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("spmm", &spmm, "out[i, d] = sum_p weight[p, d / C] x[col[p], d] over row i's edges (CSR)");
  m.def("edge_dot", &edge_dot, "out[p, h] = <a[dst[p], h], b[col[p], h]> for every edge and head");
  m.def("gat_forward", &gat_forward, "GAT's attention and aggregation, one online softmax per node and head");
  m.def("gat_backward", &gat_backward, "GAT's alpha, dz and grad_a_dst per node and head");
}
