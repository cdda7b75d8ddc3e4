"""MoE dispatch and combine with Triton kernels: the same contract as `course.moe.dispatch`.

Routing positions come from a parallel counting sort (`triton_routing`), the rows move with a scatter
and a gather-sum (`triton_rows`); `host` derives the backward passes from the same kernels.
"""
from types import SimpleNamespace

from course.kernels.moe import triton_routing, triton_rows
from course.kernels.moe.host import combine_with, dispatch_with
from course.moe.dispatch import Dispatched

PRIMITIVES = SimpleNamespace(
    route_slots=triton_routing.route_slots,
    scatter_rows=triton_rows.scatter_rows,
    gather_rows=triton_rows.gather_rows,
    row_dot=triton_rows.row_dot,
    BACKEND="triton",
    MAX_EXPERTS=triton_routing.MAX_EXPERTS,
)


def dispatch(x, expert_index, num_experts: int, capacity: int | None = None) -> Dispatched:
    """GShard Algorithm 1 dispatch as a Triton counting sort and row scatter.

    x [T, D], expert_index [T, k] -> Dispatched(x [S, D], slot [T, k], counts [E]).
    """
    return dispatch_with(PRIMITIVES, x, expert_index, num_experts, capacity)


def combine(y, slot, gates):
    """Shazeer et al. 2017 eq. 1 as a Triton row gather-sum.

    y [S, D], slot [T, k], gates [T, k] -> [T, D].
    """
    return combine_with(PRIMITIVES, y, slot, gates)
