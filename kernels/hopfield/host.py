"""Host-side pieces shared by the Triton and the CUDA backends of hopfield.retrieve and
hopfield.sparse_retrieve: the argument checks, the autograd Function of one update, the loop over steps.

A backend supplies the streaming primitives (the contracts of `course.streaming`, which both the
Triton module `course.kernels.triton_streaming` and the CUDA module `course.kernels.cuda_streaming`
implement), and constants:
    streaming_forward(x [N, D], y [M, D], temperature [N], norm_weight, weighting)
        -> out [N, D] (x's dtype), stats: (m [N], l [N]) for "softmax", (tau [N],) for "sparsemax"
    streaming_backward(x, y, temperature, norm_weight, weighting, stats, grad [N, D], need_y)
        -> grad_x [N, D] (x's dtype), grad_y [M, D] (y's dtype) or None
    LEVELS: the dtype of the temperatures and statistics the kernels read, given the rows' dtype
    BACKEND: its name in the registry; DEVICE: "cuda" for kernels that read device memory
Every [N, D] and [M, D] tensor reaches a primitive contiguous, every [N] contiguous in LEVELS(dtype).
The dtypes a backend runs are declared once, in the registry (course/hopfield/ops.py), and checked here.
"""
import torch

from course.hopfield.modern import check_retrieve_args
from course.kernels.launch import check_backend, on_device
from course.streaming import MAX_SPARSE_ROWS, SOFTMAX, SPARSEMAX

OPS = {SOFTMAX: "hopfield.retrieve", SPARSEMAX: "hopfield.sparse_retrieve"}


class RetrievalStep(torch.autograd.Function):
    """One update xi -> sum_j p_ij x_j; saves the per-query statistics, never the [N, M] weights."""

    @staticmethod
    def forward(ctx, x, y, temperature, weighting, prims):
        x, y = x.contiguous(), y.contiguous()
        out, stats = prims.streaming_forward(x, y, temperature, 0.0, weighting)
        ctx.save_for_backward(x, y, temperature, *stats)
        ctx.weighting, ctx.prims = weighting, prims
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, y, temperature, *stats = ctx.saved_tensors
        grad_x, grad_y = ctx.prims.streaming_backward(x, y, temperature, 0.0, ctx.weighting, tuple(stats),
                                                      grad_out.contiguous(), ctx.needs_input_grad[1])
        return grad_x, grad_y, None, None, None


def retrieve_with(prims, queries, patterns, beta, steps: int, weighting: str):
    """Check the arguments and run `steps` updates with a backend's primitives."""
    where = OPS[weighting]
    beta = check_retrieve_args(where, queries, patterns, beta, steps)
    if patterns.device != queries.device:
        raise ValueError(f"{where}: `patterns` must be on the queries' device {queries.device}; got "
                         f"{patterns.device}.")
    if weighting == SPARSEMAX and patterns.shape[0] > MAX_SPARSE_ROWS:
        raise ValueError(f"{where} ({prims.BACKEND} backend): `patterns` may hold at most "
                         f"{MAX_SPARSE_ROWS} rows, since the kernels sort one row of logits on chip; got "
                         f"M = {patterns.shape[0]}. Use backend='reference' for larger memories.")
    check_backend(where, prims.BACKEND, "queries", queries)
    with on_device(where, prims, queries):
        temperature = torch.full((queries.shape[0],), 1.0 / beta, dtype=prims.LEVELS(queries.dtype),
                                 device=queries.device)
        xi = queries
        for _ in range(steps):
            xi = RetrievalStep.apply(xi, patterns, temperature, weighting, prims)
        return xi
