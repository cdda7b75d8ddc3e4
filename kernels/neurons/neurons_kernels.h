// Launchers of the neuron-model CUDA kernels: the safe rational activation (neurons_rational.cu,
// course.neurons.rational.rational), the cubic B-spline KAN layer (neurons_kan.cu,
// course.neurons.kan.kan_linear) and the PHM layer (neurons_phm.cu, course.neurons.phm.phm_linear),
// forward and backward. Plain pointers and a stream, no PyTorch types, so the .cu files compile with nvcc
// alone; neurons_binding.cpp turns tensors into these calls. Inputs are contiguous in the storage type
// scalar_t (float, __half, __nv_bfloat16); arithmetic, partial sums and workspaces are float32.
#pragma once
#include <cstdint>
#include <cuda_runtime.h>

// ---- rational: y = P(x) / (1 + |S(x)|), P(x) = a_0 + ... + a_m x^m, S(x) = b_1 x + ... + b_n x^n ----
constexpr int kRationalThreads = 256;    // threads a block of the rational kernels, at most
constexpr int kRationalItems = 4;        // elements a thread (at least, grid-stride) before more blocks
constexpr int kMaxNumerator = 16;        // m + 1 <= 16: the coefficients' gradients live in registers
constexpr int kMaxDenominator = 16;      // n <= 16
constexpr int kRationalMaxBlocks = 1024; // the backward's grid: each thread strides over the elements

// y [E] = P(x) / Q(x), numerator [m + 1], denominator [n] (n may be 0: Q = 1).
template <typename scalar_t>
void launch_rational_forward(const scalar_t* x, const scalar_t* numerator, const scalar_t* denominator,
                             scalar_t* y, int64_t E, int m, int n, cudaStream_t stream);

// The number of blocks the backward uses for E elements (the rows of its partial sums):
// min(ceil(E / (kRationalThreads kRationalItems)), kRationalMaxBlocks).
int64_t rational_backward_blocks(int64_t E);

// grad_x [E] in scalar_t, and the float32 partial sums [blocks, m + 1 + n] of the coefficients'
// gradients, one row a block (the caller sums the rows, in a fixed order); E > 0.
template <typename scalar_t>
void launch_rational_backward(const scalar_t* x, const scalar_t* numerator, const scalar_t* denominator,
                              const scalar_t* grad, scalar_t* grad_x, float* partial, int64_t E, int m,
                              int n, cudaStream_t stream);

// ---- kan_linear: y = silu(x) base + sum_i basis_i(x) coef[i], cubic B-splines on a uniform grid ----
constexpr int kKanThreads = 256;  // threads a block of the KAN kernels, at most (the parameters' twice)
constexpr int kKanRows = 32;      // rows b a block of the forward, at most
constexpr int kKanChunk = 32;     // inputs i (forward) or rows b (parameter gradients) staged at once
constexpr int kKanLanes = 32;     // outputs o a block (forward, parameter gradients) or a group (grad_x)

// y [B, O] from x [B, I], base [I, O], coef [I, G + 3, O], the grid over [-R, R] (R = grid_range).
template <typename scalar_t>
void launch_kan_forward(const scalar_t* x, const scalar_t* base, const scalar_t* coef, scalar_t* y,
                        int64_t B, int64_t I, int64_t O, int64_t G, float grid_range, cudaStream_t stream);

// grad_x [B, I] = silu'(x) (grad base^T) + sum_c B_c'(x) (grad coef[:, c]^T), from grad [B, O].
template <typename scalar_t>
void launch_kan_backward_input(const scalar_t* x, const scalar_t* base, const scalar_t* coef,
                               const scalar_t* grad, scalar_t* grad_x, int64_t B, int64_t I, int64_t O,
                               int64_t G, float grid_range, cudaStream_t stream);

// grad_base [I, O] = silu(x)^T grad and grad_coef [I, G + 3, O] = sum_b B_c(x_bi) grad[b, o], from
// grad [B, O] (sums over the rows in row order, float32).
template <typename scalar_t>
void launch_kan_backward_params(const scalar_t* x, const scalar_t* grad, scalar_t* grad_base,
                                scalar_t* grad_coef, int64_t B, int64_t I, int64_t O, int64_t G,
                                float grid_range, cudaStream_t stream);

// ---- phm_linear: y_p = sum_i sum_r A_i[r, p] (x_r F_i), W = sum_i A_i (x) F_i never formed ----
constexpr int kPhmThreads = 256;  // threads a block of the PHM kernels, at most
constexpr int kPhmRows = 32;      // rows a block of the products (b of y, m of grad_W), at most
constexpr int kPhmRowsPerThread = 4;  // rows a thread of the products (register blocking)
constexpr int kPhmChunk = 32;     // the reduction's chunk staged in shared memory (k, or rows b)
constexpr int kPhmLanes = 32;     // output columns a block, at most

// y [B, n O_n] from x [B, n I_n], A [n, n, n], F [n, I_n, O_n].
template <typename scalar_t>
void launch_phm_forward(const scalar_t* x, const scalar_t* A, const scalar_t* F, scalar_t* y, int64_t B,
                        int64_t n, int64_t In, int64_t On, cudaStream_t stream);

// grad_x [B, n I_n] = grad W^T from grad [B, n O_n]: the forward's kernel with A_i and F_i transposed.
template <typename scalar_t>
void launch_phm_backward_input(const scalar_t* grad, const scalar_t* A, const scalar_t* F, scalar_t* grad_x,
                               int64_t B, int64_t n, int64_t In, int64_t On, cudaStream_t stream);

// The float32 workspace grad_W [n I_n, n O_n] = x^T grad (the gradient of the W the forward never
// formed), summed over the rows in row order.
template <typename scalar_t>
void launch_phm_grad_weight(const scalar_t* x, const scalar_t* grad, float* grad_W, int64_t B, int64_t I,
                            int64_t O, cudaStream_t stream);

// grad_A [n, n, n]: grad_A_i[r, p] = sum_kq grad_W[r I_n + k, p O_n + q] F_i[k, q], a fixed-order sum.
template <typename scalar_t>
void launch_phm_grad_rules(const scalar_t* F, const float* grad_W, scalar_t* grad_A, int64_t n, int64_t In,
                           int64_t On, cudaStream_t stream);

// grad_F [n, I_n, O_n]: grad_F_i[k, q] = sum_rp A_i[r, p] grad_W[r I_n + k, p O_n + q].
template <typename scalar_t>
void launch_phm_grad_weights(const scalar_t* A, const float* grad_W, scalar_t* grad_F, int64_t n, int64_t In,
                             int64_t On, cudaStream_t stream);
