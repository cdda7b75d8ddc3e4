"""Mixture-of-experts routing (family `moe-routing`): gating, dispatch, experts, combine, balancing.

The library, which later families import: `gating`, `dispatch`, `experts`, `token_loop`, `layer`,
`losses`, `transport`, `conditional`, `expert_parallel`; the registry's ops in `ops`; the notebook's
exercises in `exercises`; one module per paper, with its toy and its claim, in `papers/`.
"""
FAMILY = "moe-routing"
WIDGET = "course.widgets.routing:gallery"

from course.moe.dispatch import Dispatched, combine, dispatch, expert_capacity, route_slots  # noqa: E402
from course.moe.experts import expert_mlp, expert_mlp_padded  # noqa: E402
from course.moe.gating import Gating, keep_top_k, noisy_top_k_gating, prototype_gate, with_bias  # noqa: E402
from course.moe.layer import MoELayer, MoEOutput  # noqa: E402
from course.moe.losses import (balance_loss, cv_squared, dense_gates, importance, importance_loss,  # noqa: E402
                               load, switch_balance_loss)
from course.moe.token_loop import combine_token_loop, dispatch_token_loop  # noqa: E402

__all__ = [
    "Dispatched", "Gating", "MoELayer", "MoEOutput", "balance_loss", "combine", "combine_token_loop",
    "cv_squared", "dense_gates", "dispatch", "dispatch_token_loop", "expert_capacity", "expert_mlp",
    "expert_mlp_padded", "importance", "importance_loss", "keep_top_k", "load", "noisy_top_k_gating",
    "prototype_gate", "route_slots", "switch_balance_loss", "with_bias",
]
