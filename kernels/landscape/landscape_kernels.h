// Launchers of the landscape CUDA kernels (landscape_grid.cu): the loss of an MLP at G grid points
// theta + alpha_g d1 + beta_g d2, the contract of course.landscape.grid.grid_loss. Plain pointers and a
// stream, no PyTorch types, so the .cu file compiles with nvcc alone; landscape_binding.cpp turns tensors
// into these calls, one launch per layer and one for the loss. Parameters are in the storage type
// scalar_t (float, __nv_bfloat16), in the layout of course.landscape.models (W [fan_out, fan_in]
// row-major, then b [fan_out], layer after layer); coords, activations and logits are float32.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

constexpr int kTileK = 16;           // fan-in columns per step of a layer's matmul
constexpr int kMaxTileOut = 16;      // outputs per block of a layer (its blockDim.x, at most)
constexpr int kMaxThreadsN = 16;     // threads along the examples (its blockDim.y, at most)
constexpr int kRowsPerThread = 4;    // examples per thread: up to 64 examples a block
constexpr int kPointsPerBlock = 8;   // grid points per block: each weight tile is loaded once for all
constexpr int kLossThreads = 32;     // threads per block of the loss (one block per grid point)

// One Linear layer (then ReLU if `relu`) at G grid points, the perturbation fused into the matmul:
//   out[g, n, j] = act(sum_k in[g, n, k] (W0 + a_g D1 + b_g D2)[j, k] + (b0 + a_g e1 + b_g e2)[j])
// with (a_g, b_g) = coords[g]. w0, w1, w2 point at this layer's W in theta, d1 and d2 (its bias follows
// at + fan_out * fan_in). in [G, N, fan_in] has `in_point_stride` = N * fan_in between grid points, or 0
// for the first layer, whose input x [N, fan_in] every grid point shares. out [G, N, fan_out] float32.
template <typename scalar_t, typename in_t>
void launch_perturbed_layer(const in_t* in, int64_t in_point_stride, const scalar_t* w0, const scalar_t* w1,
                            const scalar_t* w2, const float* coords, float* out, int64_t G, int64_t N,
                            int64_t fan_in, int64_t fan_out, bool relu, cudaStream_t stream);

// The mean cross-entropy over the examples at each grid point, a stable logsumexp in float32:
//   losses[g] = (1 / N) sum_n (logsumexp_c logits[g, n, c] - logits[g, n, labels[n]])
// logits [G, N, C] float32, labels [N] int64 in [0, C) -> losses [G] (rounded to nearest in scalar_t).
template <typename scalar_t>
void launch_cross_entropy(const float* logits, const int64_t* labels, scalar_t* losses, int64_t G,
                          int64_t N, int64_t C, cudaStream_t stream);
