"""Mixture-of-experts routing: gating, dispatch, combine (family `moe-routing`)."""
FAMILY = "moe-routing"
from course.moe.balance import balance_loss, cv_squared, dense_gates, importance, load
from course.moe.dispatch import Dispatched, combine, dispatch, expert_capacity, route_slots
from course.moe.experts import expert_mlp, expert_mlp_padded
from course.moe.gating import Gating, keep_top_k, noisy_top_k_gating, prototype_gate, with_bias
from course.moe.layer import MoELayer, MoEOutput
from course.moe.token_loop import combine_token_loop, dispatch_token_loop

__all__ = [
    "Dispatched", "Gating", "MoELayer", "MoEOutput", "balance_loss", "combine", "combine_token_loop",
    "cv_squared", "dense_gates", "dispatch", "dispatch_token_loop", "expert_capacity", "expert_mlp",
    "expert_mlp_padded", "importance", "keep_top_k", "load", "noisy_top_k_gating", "prototype_gate",
    "route_slots", "with_bias",
]
