"""Host-side pieces shared by the Triton and the CUDA backends of dispatch and combine.

The scan step of the routing counting sort, and the autograd Functions.

A backend supplies four primitives with the same contracts:
    route_slots(expert_index [T, k], E, capacity) -> slot [T, k], counts [E]
    scatter_rows(src [T, D], slot, weight [T, k] | None, S) -> [S, D]   out[slot[t, j]] = w src[t]
    gather_rows(src [S, D], slot, weight [T, k] | None) -> [T, D]       out[t] = sum_j w src[slot[t, j]]
    row_dot(grad_out [T, D], y [S, D], slot) -> [T, k]                  <grad_out[t], y[slot[t, j]]>
and the gradients follow from dispatch being a scatter and combine a gather (ScatterMoE, Tan et al. 2024).
"""
import torch

from course.moe.dispatch import Dispatched


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
    """Run dispatch with a backend's primitives and wrap the result like the reference."""
    grouped, slot, counts = DispatchFunction.apply(x, expert_index.long().contiguous(), num_experts,
                                                   capacity, prims)
    return Dispatched(grouped, slot, counts)


def combine_with(prims, y, slot, gates):
    """Run combine with a backend's primitives."""
    return CombineFunction.apply(y, slot.long().contiguous(), gates, prims)
