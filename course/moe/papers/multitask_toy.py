"""The multi-task toy that the three task-routing papers share: data, training, cached models.

Tasks with conflicting targets on overlapping inputs, each example of one of two modalities, learned
by `course.moe.conditional.ConditionalMoE` routed on one of three keys: the token's features, its
attribute (modality) or its task. Every expert reads the whole example (features, task and
attribute one-hots), so only the key differs between the variants; one expert is the dense model.
The claims are in `beyond_distillation`, `uni_perceiver_moe` and `robust_multitask`; a model trained
for one claim is trained once and shared (`trained_model`).
"""
import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from course.metrics import relative_mse
from course.moe.conditional import ConditionalMoE
from course.moe.gating import with_bias
from course.moe.losses import switch_balance_loss
from course.train import fit

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
        raise ValueError(f"moe.multitask_data: `amplitudes` must have one number per task "
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
        raise ValueError(f"moe.task_one_hot: task ids must be in [0, TASK_SLOTS) = [0, {TASK_SLOTS}); "
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
    raise ValueError(f"moe.routing_key: `key` must be one of {KEYS}; got {key!r}.")


def train_conditional_moe(data: MultiTask, key: str, num_experts: int, d_hidden: int = 8,
                          steps: int = 400, lr: float = 0.02, balance: float = 0.1,
                          seed: int = 0) -> ConditionalMoE:
    """Full-batch Adam on squared error plus Switch's balancing loss. -> the trained model."""
    inputs, keys = expert_inputs(data), routing_key(data, key)
    model = ConditionalMoE(inputs.shape[1], keys.shape[1], d_hidden, num_experts, seed=seed)

    def loss():
        y, expert_index, probs = model(inputs, keys)
        return F.mse_loss(y, data.y) + balance * switch_balance_loss(probs, expert_index)

    fit(model.parameters(), loss, steps, lr, seed=seed, desc=f"{key}-routed MoE")
    return model


def trained_model(key: str, num_experts: int, num_tasks: int = 4, amplitudes=None,
                  seed: int = 0) -> ConditionalMoE:
    """A ConditionalMoE trained on `multitask_data(512, ...)`, cached so the claims share models.

    Callers must not modify the returned model. `amplitudes` is a sequence or None.
    """
    amplitudes = None if amplitudes is None else tuple(float(a) for a in amplitudes)
    return cached_training(key, num_experts, num_tasks, amplitudes, seed)


@functools.lru_cache(maxsize=32)
def cached_training(key: str, num_experts: int, num_tasks: int, amplitudes, seed: int):
    """`trained_model` with every argument positional, so equal calls share one cache entry."""
    data = multitask_data(512, num_tasks, amplitudes=amplitudes, seed=seed)
    return train_conditional_moe(data, key, num_experts, seed=seed)


def held_out(num_tasks: int = 4, amplitudes=None, seed: int = 0) -> MultiTask:
    """Test examples of the tasks `trained_model` learns (other draws of the same teachers)."""
    return multitask_data(512, num_tasks, amplitudes=amplitudes, seed=seed + 100)


def experts_used(model: ConditionalMoE, data: MultiTask, key: str, task: int):
    """The experts the task's examples are routed to, most used first. -> [E_used]"""
    keys = routing_key(data, key)[data.task == task]
    with torch.no_grad():
        expert_index, _, _ = model.route(keys)
    counts = torch.bincount(expert_index.flatten(), minlength=model.num_experts)
    order = counts.argsort(descending=True, stable=True)
    return order[counts[order] > 0]


def task_errors(model: ConditionalMoE, data: MultiTask, key: str) -> list:
    """Relative test error (MSE / Var y) of the model on each task, in task order."""
    with torch.no_grad():
        y, _, _ = model(expert_inputs(data), routing_key(data, key))
    return [relative_mse(y[data.task == t], data.y[data.task == t])
            for t in range(int(data.task.max()) + 1)]
