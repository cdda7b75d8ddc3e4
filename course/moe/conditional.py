"""A conditional mixture of experts: the router reads a key of its own, not the token it routes.

Zhu et al. 2022, "Uni-Perceiver-MoE" (conditional MoE): the routing key z in G(z) can be the token's
representation, an attribute of the token (its modality) or the task. Kudugunta et al. 2021
("Beyond Distillation") route on the task, so that all tokens of a task take the same experts.

The layer is a Switch-style top-1 MoE (Fedus et al. 2021, eqs. 1-2): p = Softmax(key W_r),
e* = argmax p, y = p_e* E_e*(x), run through `course.moe.dispatch` and `course.moe.combine`, with
ReLU experts E_e(x) = ReLU(x W1_e) W2_e and one output per token.
"""
import torch
from torch import nn

from course.checks import check_int
from course.moe.dispatch import combine, dispatch


class ConditionalMoE(nn.Module):
    """Top-1 MoE of ReLU experts whose router reads a separate key (Uni-Perceiver-MoE's G(z))."""

    def __init__(self, d_in: int, d_key: int, d_hidden: int, num_experts: int, seed: int = 0):
        super().__init__()
        check_int("ConditionalMoE", "num_experts", num_experts, low=1)
        g = torch.Generator().manual_seed(seed)
        self.w_router = nn.Parameter(torch.randn(d_key, num_experts, generator=g))
        self.w1 = nn.Parameter(torch.randn(num_experts, d_in, d_hidden, generator=g) / d_in ** 0.5)
        self.w2 = nn.Parameter(torch.randn(num_experts, d_hidden, 1, generator=g) / d_hidden ** 0.5)

    @property
    def num_experts(self) -> int:
        return self.w1.shape[0]

    def route(self, key):
        """Switch routing: expert_index [N, 1], gates [N, 1] (chosen probability), probs [N, E]."""
        probs = (key @ self.w_router).softmax(dim=1)  # [N, E]
        gates, expert_index = probs.max(dim=1, keepdim=True)
        return expert_index, gates, probs

    def experts(self, x_grouped, counts):
        """Each expert's ReLU MLP on its block of rows. x_grouped [S, d_in], counts [E] -> [S, 1]"""
        blocks = x_grouped.split(counts.tolist())
        return torch.cat([torch.relu(rows @ self.w1[e]) @ self.w2[e]
                          for e, rows in enumerate(blocks)])

    def forward(self, x, key):
        """x [N, d_in], key [N, d_key] -> y [N], expert_index [N, 1], probs [N, E]."""
        expert_index, gates, probs = self.route(key)
        routed = dispatch(x, expert_index, self.num_experts)
        y = combine(self.experts(routed.x, routed.counts), routed.slot, gates)  # [N, 1]
        return y.squeeze(1), expert_index, probs
