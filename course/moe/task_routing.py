"""Conditional routing keys for multi-task mixtures of experts: token, attribute, task.

Three papers route the same MoE layer on different keys:

- Kudugunta et al. 2021, "Beyond Distillation: Task-level Mixture-of-Experts for Efficient
  Inference": the router reads the task id instead of the token, G(x) = Softmax(W_g task_emb), so
  all tokens of a task take the same experts and a task's sub-network can be sliced out to serve.
- Zhu et al. 2022, "Uni-Perceiver-MoE: Learning Sparse Generalist Models with Conditional MoEs"
  (conditional MoE): the routing key z in G(z) is the token representation, an attribute of the
  token (its modality) or the task, to reduce interference between tasks and modalities sharing
  one generalist model.
- Gupta et al. 2022, "Sparsely Activated Mixture-of-Experts are Robust Multi-Task Learners"
  (task-aware gating): the gate is conditioned on the task, so an unrelated task added to the mix
  takes its own experts instead of overwriting the shared weights.

The layer here is a Switch-style top-1 MoE (Fedus et al. 2021, eqs. 1-2 and 4-6):
p = Softmax(key W_r), expert e* = argmax p, y = p_e* E_e*(x), with the auxiliary balancing loss
E sum_e f_e P_e, run through `course.moe.dispatch` and `course.moe.combine`. Every expert reads
the whole example (features, task and attribute one-hots), so only the key differs between the
variants; one expert is the dense model. The three papers' claims, and the slicing of a task's
sub-network, are in `course.moe.task_routing_claims`.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int
from course.moe.dispatch import combine, dispatch
from course.moe.gating import with_bias

KEYS = ("token", "attribute", "task")
TASK_SLOTS = 8  # width of the task one-hot, the most tasks a model can be trained on


class MultiTask(NamedTuple):
    """Examples of several regression tasks on shared inputs."""

    x: torch.Tensor          # [N, D] features
    task: torch.Tensor       # [N] task id
    attribute: torch.Tensor  # [N] modality of the example (shifts its input distribution)
    y: torch.Tensor          # [N] target


def teacher_directions(num_tasks: int, dim: int, seed: int = 1000):
    """A random unit direction u for each (task, modality) pair, task t drawn from seed + t.

    Adding a task leaves the earlier tasks' teachers as they were. -> [tasks, 2, D]
    """
    u = torch.stack([torch.randn(2, dim, generator=torch.Generator().manual_seed(seed + t))
                     for t in range(num_tasks)])
    return u / u.norm(dim=2, keepdim=True)


def multitask_data(n_per_task: int, num_tasks: int = 4, dim: int = 6, frequency: float = 1.0,
                   amplitudes=None, seed: int = 0, teacher_seed: int = 1000) -> MultiTask:
    """Tasks with conflicting targets on overlapping inputs, each example of one of two modalities.

    y = sin(frequency u_{task, modality} . x): the same x has a different target in every task, and
    in the two modalities of one task. Modality 1 also shifts x along its first axis. Task t's
    examples are drawn from seed * 1000 + t, so adding a task leaves the earlier tasks' data alone.
    `amplitudes` [tasks] scales each task's target (default 1): a loud task dominates a shared loss.
    """
    u = teacher_directions(num_tasks, dim, teacher_seed)
    amplitudes = [1.0] * num_tasks if amplitudes is None else list(amplitudes)
    if len(amplitudes) != num_tasks:
        raise ValueError(f"task_routing.multitask_data: `amplitudes` must have one number per task "
                         f"({num_tasks}); got {len(amplitudes)}.")
    blocks = []
    for t in range(num_tasks):
        g = torch.Generator().manual_seed(seed * 1000 + t)
        attribute = torch.randint(2, (n_per_task,), generator=g)
        x = torch.randn(n_per_task, dim, generator=g)
        x[:, 0] += 2.0 * attribute - 1.0
        y = amplitudes[t] * torch.sin(frequency * (x * u[t, attribute]).sum(1))
        blocks.append(MultiTask(x, torch.full((n_per_task,), t), attribute, y))
    return MultiTask(*(torch.cat(parts) for parts in zip(*blocks)))


def expert_inputs(data: MultiTask):
    """What every expert reads: features, task and attribute one-hots, a 1. -> [N, D + 11]

    The task one-hot has TASK_SLOTS places whatever the number of tasks, so a model trained on more
    tasks starts from the same weights for the tasks it shares with one trained on fewer.
    """
    return with_bias(torch.cat([data.x, task_one_hot(data.task),
                                F.one_hot(data.attribute, 2).float()], dim=1))


def task_one_hot(task):
    """[N] task ids -> [N, TASK_SLOTS]"""
    if task.numel() and task.max().item() >= TASK_SLOTS:
        raise ValueError(f"task_routing: task ids must be in [0, TASK_SLOTS) = [0, {TASK_SLOTS}); "
                         f"got {task.max().item()}.")
    return F.one_hot(task, TASK_SLOTS).float()


def routing_key(data: MultiTask, key: str):
    """The router's input: the token's features, its attribute, or its task. -> [N, K]"""
    if key == "token":
        return with_bias(data.x)
    if key == "attribute":
        return F.one_hot(data.attribute, 2).float()
    if key == "task":
        return task_one_hot(data.task)
    raise ValueError(f"task_routing.routing_key: `key` must be one of {KEYS}; got {key!r}.")


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


def switch_balance_loss(expert_index, probs):
    """Switch Transformer eqs. 4-6: E sum_e f_e P_e, fraction routed times mean probability."""
    E = probs.shape[1]
    f = torch.bincount(expert_index.flatten(), minlength=E).float() / expert_index.numel()
    return E * (f * probs.mean(0)).sum()


def train_conditional_moe(data: MultiTask, key: str, num_experts: int, d_hidden: int = 8,
                          steps: int = 400, lr: float = 0.02, balance: float = 0.1,
                          seed: int = 0) -> ConditionalMoE:
    """Full-batch Adam on squared error plus the balancing loss. -> the trained model."""
    inputs, keys = expert_inputs(data), routing_key(data, key)
    model = ConditionalMoE(inputs.shape[1], keys.shape[1], d_hidden, num_experts, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        y, expert_index, probs = model(inputs, keys)
        loss = F.mse_loss(y, data.y) + balance * switch_balance_loss(expert_index, probs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def relative_error(pred, target) -> float:
    """Mean squared error over the target's variance (1 - R^2): 1 is predicting the mean."""
    return (F.mse_loss(pred, target) / target.var()).item()


def task_errors(model: ConditionalMoE, data: MultiTask, key: str) -> list:
    """Relative test error of the model on each task, in task order."""
    with torch.no_grad():
        y, _, _ = model(expert_inputs(data), routing_key(data, key))
    return [relative_error(y[data.task == t], data.y[data.task == t])
            for t in range(int(data.task.max()) + 1)]
