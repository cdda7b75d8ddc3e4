"""Parameterized hypercomplex multiplication: a weight built from sums of Kronecker products.

Zhang et al. 2021 ("Beyond Fully-Connected Layers with Quaternions", arXiv:2102.08597, eq. 4) and Grassucci
et al. 2022 ("PHNNs: Lightweight Neural Networks via Parameterized Hypercomplex Convolutions",
arXiv:2110.04176, eq. 4): for a hypercomplex dimension n dividing both widths,

    W = sum_{i=1}^{n} A_i (x) F_i,   A_i [n, n] (the learned algebra's multiplication rules),
                                     F_i [I / n, O / n] (the weights),

so that W [I, O] has n^3 + I O / n parameters instead of I O: about 1/n of them. With n = 4 and A fixed to
the quaternion rules it is the quaternion layer; here A is learned.

y = x W is computed without forming W: with x split into n blocks x_r [B, I / n] and y into n blocks
y_p [B, O / n], W's block (r, p) is sum_i A_i[r, p] F_i, so

    y_p = sum_i sum_r A_i[r, p] (x_r F_i)

n^2 products of [B, I / n] x [I / n, O / n] (x_r F_i), mixed by A: B I O multiply-adds, as many as the
dense product, from 1/n of the weights. `phm_linear` (the op's reference) forms W and multiplies densely,
the dense matmul of the same size; `phm_linear_blocks` is the factored form above.
"""
import torch

from course.checks import check_tensor


def check_phm_args(where: str, x, A, F) -> int:
    """The op's argument checks, shared by every backend; returns n."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "A", A, ndim=3, kind="float")
    check_tensor(where, "F", F, ndim=3, kind="float")
    n = A.shape[0]
    if n < 1 or A.shape != (n, n, n):
        raise ValueError(f"{where}: `A` must be [n, n, n] (n rule matrices of n x n), n >= 1; got "
                         f"{tuple(A.shape)}.")
    if F.shape[0] != n:
        raise ValueError(f"{where}: `F` must be [n, I / n, O / n] with n = {n}; got {tuple(F.shape)}.")
    if x.shape[1] != n * F.shape[1]:
        raise ValueError(f"{where}: `x` must be [B, I] with I = n * F.shape[1] = {n * F.shape[1]}; got "
                         f"{tuple(x.shape)}.")
    for name, t in (("A", A), ("F", F)):
        if t.dtype != x.dtype:
            raise TypeError(f"{where}: `{name}` must have x's dtype {x.dtype}; got {t.dtype}.")
        if t.device != x.device:
            raise ValueError(f"{where}: `{name}` must be on x's device {x.device}; got {t.device}.")
    return n


def phm_weight(A, F):
    """W = sum_i A_i (x) F_i. A [n, n, n], F [n, I / n, O / n] -> [I, O]"""
    return sum(torch.kron(A[i], F[i]) for i in range(A.shape[0]))


def phm_linear(x, A, F):
    """y = x W with W = sum_i A_i (x) F_i formed, then one dense matmul. x [B, I] -> [B, O]"""
    check_phm_args("neurons.phm_linear", x, A, F)
    acc = torch.promote_types(x.dtype, torch.float32)
    return (x.to(acc) @ phm_weight(A.to(acc), F.to(acc))).to(x.dtype)


def phm_linear_blocks(x, A, F):
    """y_p = sum_i sum_r A_i[r, p] (x_r F_i): W is never formed. x [B, I] -> [B, O]"""
    n = check_phm_args("neurons.phm_linear_blocks", x, A, F)
    acc = torch.promote_types(x.dtype, torch.float32)
    blocks = x.to(acc).reshape(x.shape[0], n, x.shape[1] // n)  # x_r [B, n, I / n]
    products = torch.einsum("brk,ikq->birq", blocks, F.to(acc))  # x_r F_i [B, n_i, n_r, O / n]
    y = torch.einsum("irp,birq->bpq", A.to(acc), products)  # [B, n_p, O / n]
    return y.reshape(x.shape[0], n * F.shape[2]).to(x.dtype)


def parameter_counts(I: int, O: int, n: int) -> tuple[int, int]:
    """(PHM weights n^3 + I O / n, dense weights I O)."""
    return n ** 3 + I * O // n, I * O
