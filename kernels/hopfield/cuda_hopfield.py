"""hopfield.retrieve and hopfield.sparse_retrieve with CUDA kernels: the contracts of
`course.hopfield.modern.retrieve` and `course.hopfield.sparse.sparse_retrieve`.

Each update xi <- sum_j p_j(beta xi . x_j) x_j (Ramsauer et al. 2020, eq. 3; its sparse form with sparsemax,
Hu et al. 2023) is one run of the course's shared streaming kernels (`kernels/streaming_softmax.cu`, loaded by
`course.kernels.cuda_streaming`, which diffusion.ideal_denoiser runs too) with norm weight h = 0 and the
temperature t_i = 1 / beta; `host` checks the arguments, holds the autograd Function (gradients for the
queries and the stored patterns) and loops over the steps. The kernels compute in float32: float32, float16
and bfloat16 tensors.
"""
from types import SimpleNamespace

from course.kernels import cuda_streaming
from course.kernels.hopfield.host import retrieve_with
from course.streaming import SOFTMAX, SPARSEMAX

# The CUDA extension modules these backends launch through (the CPU emulator's fixture emulates them).
CUDA_MODULES = ("course.kernels.cuda_streaming",)

PRIMITIVES = SimpleNamespace(**cuda_streaming.PRIMITIVE_FIELDS)


def retrieve(queries, patterns, beta, steps: int = 1):
    """`steps` updates xi <- softmax(beta xi X^T) X (Ramsauer et al. 2020, eq. 3) by the CUDA streaming
    softmax. queries [N, D], patterns [M, D], beta > 0 -> [N, D]"""
    return retrieve_with(PRIMITIVES, queries, patterns, beta, steps, SOFTMAX)


def sparse_retrieve(queries, patterns, beta, steps: int = 1):
    """`steps` updates xi <- sparsemax(beta xi X^T) X (Hu et al. 2023; Martins & Astudillo 2016) by the
    CUDA streaming sparsemax (M <= MAX_SPARSE_ROWS). queries [N, D], patterns [M, D], beta > 0 -> [N, D]"""
    return retrieve_with(PRIMITIVES, queries, patterns, beta, steps, SPARSEMAX)
