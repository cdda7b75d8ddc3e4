"""The sparsely-gated mixture-of-experts layer of Shazeer et al. 2017, built from the family's ops.

    y = sum_i G(x)_i E_i(x)                                                         (eq. 1)

noisy top-k gating (eqs. 3-5) -> `moe.dispatch` (group rows by expert, optional capacity) ->
`moe.expert_mlp` (every expert's ReLU MLP as one grouped product) -> `moe.combine` (gate-weighted sum).
Each op runs on the backend that `backend` names ("auto": the fastest available for the inputs'
device and dtype, see `Op.choose`), chosen once per device and dtype, not on every forward;
`backends_used` says which ran and why.
"""
from typing import NamedTuple

import torch
from torch import nn

from course import registry
from course.moe.dispatch import Dispatched, expert_capacity
from course.moe.gating import Gating, noisy_top_k_gating


class MoEOutput(NamedTuple):
    y: torch.Tensor  # [T, D]
    gating: Gating
    routed: Dispatched


class MoELayer(nn.Module):
    """Noisy top-k gated experts with one ReLU hidden layer each.

    W_g and W_noise start at zero, as in the paper (section 4: no signal, uniform noise); the experts
    start with N(0, 1/fan_in) weights.
    """

    def __init__(self, d_model: int, d_hidden: int, num_experts: int, k: int = 2,
                 capacity_factor: float | None = None, noisy: bool = True, backend: str = "auto"):
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"MoELayer: `k` must be in [1, num_experts] = [1, {num_experts}]; got {k}.")
        self.k, self.capacity_factor, self.backend = k, capacity_factor, backend
        self.w_gate = nn.Parameter(torch.zeros(d_model, num_experts))
        self.w_noise = nn.Parameter(torch.zeros(d_model, num_experts)) if noisy else None
        self.w1 = nn.Parameter(torch.randn(num_experts, d_model, d_hidden) / d_model ** 0.5)
        self.w2 = nn.Parameter(torch.randn(num_experts, d_hidden, d_model) / d_hidden ** 0.5)
        self.backends_used: dict[str, registry.Choice] = {}  # op -> the backend that ran, and why
        self._chosen: dict[tuple, registry.Choice] = {}

    @property
    def num_experts(self) -> int:
        return self.w1.shape[0]

    def op(self, name: str, x):
        """The implementation of op `name` for inputs like `x`, chosen once per device and dtype."""
        key = (name, str(x.device), x.dtype)
        if key not in self._chosen:
            self._chosen[key] = registry.get(name).choose(self.backend, x.device, x.dtype)
        self.backends_used[name] = self._chosen[key]
        return self._chosen[key].impl.load()

    def forward(self, x, generator: torch.Generator | None = None) -> MoEOutput:
        """x [T, D] -> MoEOutput(y [T, D], gating, routed)."""
        T, E = x.shape[0], self.num_experts
        gating = noisy_top_k_gating(x, self.w_gate, self.w_noise, self.k, train=self.training,
                                    generator=generator)
        capacity = None if self.capacity_factor is None or T == 0 else expert_capacity(T, E, self.k,
                                                                              self.capacity_factor)
        routed = self.op("moe.dispatch", x)(x, gating.expert_index, E, capacity)
        h = self.op("moe.expert_mlp", x)(routed.x, routed.counts, self.w1, self.w2)
        y = self.op("moe.combine", x)(h, routed.slot, gating.gates)
        return MoEOutput(y, gating, routed)
