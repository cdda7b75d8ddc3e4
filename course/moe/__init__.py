"""Mixture-of-experts routing: gating, dispatch, combine (family `moe-routing`)."""
FAMILY = "moe-routing"
from course.moe.dispatch import Dispatched, combine, dispatch, expert_capacity, route_slots
from course.moe.gating import Gating, keep_top_k, noisy_top_k_gating, prototype_gate, with_bias
from course.moe.token_loop import combine_token_loop, dispatch_token_loop

__all__ = [
    "Dispatched", "Gating", "combine", "combine_token_loop", "dispatch", "dispatch_token_loop",
    "expert_capacity", "keep_top_k", "noisy_top_k_gating", "prototype_gate", "route_slots",
    "with_bias",
]
