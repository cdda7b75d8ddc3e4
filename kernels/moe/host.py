"""Host-side pieces shared by the Triton and the CUDA backends of dispatch and combine.

The scan step of the routing counting sort, and the autograd Functions.

A backend supplies primitives with these contracts, and constants:
    route_slots(expert_index [T, k], E, capacity) -> slot [T, k], counts [E]
    scatter_rows(src [T, D], slot, weight [T, k] | None, S) -> [S, D]   out[slot[t, j]] = w src[t]
    gather_rows(src [S, D], slot, weight [T, k] | None) -> [T, D]       out[t] = sum_j w src[slot[t, j]]
    row_dot(grad_out [T, D], y [S, D], slot) -> [T, k]                  <grad_out[t], y[slot[t, j]]>
    grouped_matmul(a [S, K], w [E, K, N], tiles, epilogue, gate) -> [S, N]  epilogue(a_e w_e) per expert
    grouped_weight_grad(a [S, K], b [S, N], offsets [E + 1]) -> [E, K, N]   a_e^T b_e per expert
    TILE_M: the rows per tile of its grouped matmul
    BACKEND: its name in the registry; MAX_EXPERTS: the most experts its routing kernels hold
    DEVICE: "cuda" for kernels that read device memory (checked, and launched on the tensors' GPU)
and the gradients follow from dispatch being a scatter and combine a gather (ScatterMoE, Tan et al. 2024).
The dtypes a backend runs are declared once, in the registry (course/moe/ops.py), and checked here.
"""
import torch

from course.kernels.launch import check_backend, on_device  # noqa: F401  (re-exported)
from course.checks import check_int
from course.moe.dispatch import Dispatched, check_combine_args, check_dispatch_args
from course.moe.experts import ExpertTiles, check_expert_mlp_args, expert_tiles


def scan_chunk_histogram(hist, capacity: int | None):
    """Step 2 of the counting sort: hist [chunks, E] -> base [chunks, E], counts [E], offsets [E].

    base[c, e] counts expert e's assignments in chunks before c; counts are clamped to the capacity;
    offsets[e] is the first row of expert e's block in the grouped array.
    """
    base = hist.cumsum(0) - hist
    routed = hist.sum(0)
    counts = routed if capacity is None else routed.clamp(max=capacity)
    return base, counts, counts.cumsum(0) - counts


class DispatchFunction(torch.autograd.Function):
    """x [T, D] -> x_grouped [S, D]; backward: grad_x[t] = sum_j grad_grouped[slot[t, j]]."""

    @staticmethod
    def forward(ctx, x, expert_index, num_experts, capacity, prims):
        slot, counts = prims.route_slots(expert_index, num_experts, capacity)
        grouped = prims.scatter_rows(x.contiguous(), slot, None, int(counts.sum()))
        ctx.save_for_backward(slot)
        ctx.prims = prims
        ctx.mark_non_differentiable(slot, counts)
        return grouped, slot, counts

    @staticmethod
    def backward(ctx, grad_grouped, grad_slot, grad_counts):
        (slot,) = ctx.saved_tensors
        grad_x = ctx.prims.gather_rows(grad_grouped.contiguous(), slot, None)
        return grad_x, None, None, None, None


class CombineFunction(torch.autograd.Function):
    """y [S, D], gates [T, k] -> [T, D]; backward scatters grad_out * gate and dots it with y."""

    @staticmethod
    def forward(ctx, y, slot, gates, prims):
        y, gates = y.contiguous(), gates.contiguous()
        ctx.save_for_backward(y, slot, gates)
        ctx.prims = prims
        return prims.gather_rows(y, slot, gates)

    @staticmethod
    def backward(ctx, grad_out):
        y, slot, gates = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_y = grad_gates = None
        if ctx.needs_input_grad[0]:
            grad_y = ctx.prims.scatter_rows(grad_out, slot, gates, y.shape[0])
        if ctx.needs_input_grad[2]:
            grad_gates = ctx.prims.row_dot(grad_out, y, slot)
        return grad_y, None, grad_gates, None


def dispatch_with(prims, x, expert_index, num_experts, capacity) -> Dispatched:
    """Check the arguments, run dispatch with a backend's primitives, wrap the result like the reference."""
    check_dispatch_args(x, expert_index, num_experts, capacity)
    check_backend("moe.dispatch", prims.BACKEND, "x", x)
    check_int(f"moe.dispatch ({prims.BACKEND} backend)", "num_experts", num_experts, low=1,
              high=prims.MAX_EXPERTS)
    with on_device("moe.dispatch", prims, x):
        grouped, slot, counts = DispatchFunction.apply(x, expert_index.long().contiguous(), num_experts,
                                                       capacity, prims)
    return Dispatched(grouped, slot, counts)


def combine_with(prims, y, slot, gates):
    """Check the arguments and run combine with a backend's primitives."""
    check_combine_args(y, slot, gates)
    check_backend("moe.combine", prims.BACKEND, "y", y)
    with on_device("moe.combine", prims, y):
        return CombineFunction.apply(y, slot.long().contiguous(), gates, prims)


class ExpertMLPFunction(torch.autograd.Function):
    """x [S, D], counts [E], w1 [E, D, H], w2 [E, H, D] -> y [S, D]; saves h [S, H] for the backward.

    Forward h = ReLU(x W1_e), y = h W2_e; backward grad_h = (grad_y W2_e^T) * (h > 0),
    grad_x = grad_h W1_e^T, grad_W1_e = x_e^T grad_h_e, grad_W2_e = h_e^T grad_y_e.
    """

    @staticmethod
    def forward(ctx, x, counts, w1, w2, prims):
        x, w1, w2 = x.contiguous(), w1.contiguous(), w2.contiguous()
        tiles = expert_tiles(counts, prims.TILE_M)
        h = prims.grouped_matmul(x, w1, tiles, "relu")  # [S, H]
        y = prims.grouped_matmul(h, w2, tiles)  # [S, D]
        offsets = torch.nn.functional.pad(counts.long().cumsum(0), (1, 0))  # [E + 1]
        ctx.save_for_backward(x, w1, w2, h, offsets, *tiles)
        ctx.prims = prims
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, w1, w2, h, offsets, *tiles = ctx.saved_tensors
        tiles, prims = ExpertTiles(*tiles), ctx.prims
        grad_y = grad_y.contiguous()
        grad_h = prims.grouped_matmul(grad_y, w2.transpose(1, 2), tiles, "relu_grad", gate=h)  # [S, H]
        grad_x = prims.grouped_matmul(grad_h, w1.transpose(1, 2), tiles) if ctx.needs_input_grad[0] else None
        grad_w1 = prims.grouped_weight_grad(x, grad_h, offsets) if ctx.needs_input_grad[2] else None
        grad_w2 = prims.grouped_weight_grad(h, grad_y, offsets) if ctx.needs_input_grad[3] else None
        return grad_x, None, grad_w1, grad_w2, None


def expert_mlp_with(prims, x, counts, w1, w2):
    """Check the arguments and run the experts' grouped MLP with a backend's primitives."""
    check_expert_mlp_args(x, counts, w1, w2)
    check_backend("moe.expert_mlp", prims.BACKEND, "x", x)
    with on_device("moe.expert_mlp", prims, x):
        return ExpertMLPFunction.apply(x, counts, w1, w2, prims)
