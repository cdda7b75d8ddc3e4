"""The claims of three task-routing papers, on the multi-task toy of `course.moe.task_routing`.

- Beyond Distillation (Kudugunta et al. 2021): a task-routed MoE lets a task's sub-network (the
  experts its tokens use) be sliced out at a fraction of the size with the full model's outputs.
- Uni-Perceiver-MoE (Zhu et al. 2022): routing on the attribute or the task mitigates interference.
- Gupta et al. 2022: with task-aware gating an unrelated new task does not hurt the old ones.
"""
import functools
from typing import NamedTuple

import torch
from torch import nn

from course.claims import Claim, one_thread, timed
from course.moe.task_routing import (
    KEYS,
    ConditionalMoE,
    MultiTask,
    expert_inputs,
    multitask_data,
    relative_error,
    routing_key,
    task_errors,
    train_conditional_moe,
)


class SubNetwork(NamedTuple):
    """Experts sliced out of a trained ConditionalMoE, with its (tiny) router."""

    experts: torch.Tensor   # [E_sub] ids of the kept experts in the full model
    w_router: torch.Tensor  # [d_key, E] the full router, to compute the same gate values
    w1: torch.Tensor        # [E_sub, d_in, H]
    w2: torch.Tensor        # [E_sub, H, 1]

    def num_params(self) -> int:
        return self.w_router.numel() + self.w1.numel() + self.w2.numel()


def num_params(model: nn.Module) -> int:
    """Parameters of a model (router and every expert)."""
    return sum(p.numel() for p in model.parameters())


def experts_used(model: ConditionalMoE, data: MultiTask, key: str, task: int):
    """The experts the task's examples are routed to, most used first. -> [E_used]"""
    keys = routing_key(data, key)[data.task == task]
    with torch.no_grad():
        expert_index, _, _ = model.route(keys)
    counts = torch.bincount(expert_index.flatten(), minlength=model.num_experts)
    order = counts.argsort(descending=True, stable=True)
    return order[counts[order] > 0]


def extract_subnetwork(model: ConditionalMoE, experts) -> SubNetwork:
    """Slice the given experts out of the model: Beyond Distillation's task sub-network."""
    experts = torch.as_tensor(experts, dtype=torch.long)
    return SubNetwork(experts, model.w_router.detach(), model.w1.detach()[experts],
                      model.w2.detach()[experts])


def subnetwork_forward(sub: SubNetwork, x, key):
    """The sub-network alone: each example goes to its most probable kept expert, gated as before.

    Equals the full model wherever the full model's choice is among the kept experts.
    x [N, d_in], key [N, d_key] -> y [N].
    """
    probs = (key @ sub.w_router).softmax(dim=1)[:, sub.experts]  # [N, E_sub] full-softmax gates
    gates, local = probs.max(dim=1)  # [N]
    h = torch.relu(torch.einsum("nd,ndh->nh", x, sub.w1[local]))  # [N, H]
    return gates * torch.einsum("nh,nh->n", h, sub.w2[local, :, 0])



def trained_model(key: str, num_experts: int, num_tasks: int = 4, amplitudes=None,
                  seed: int = 0) -> ConditionalMoE:
    """A ConditionalMoE trained on `multitask_data(512, ...)`, cached so the claims share models.

    Callers must not modify the returned model. `amplitudes` is a sequence or None.
    """
    amplitudes = None if amplitudes is None else tuple(float(a) for a in amplitudes)
    return cached_training(key, num_experts, num_tasks, amplitudes, seed)


@functools.lru_cache(maxsize=16)
def cached_training(key: str, num_experts: int, num_tasks: int, amplitudes, seed: int):
    """`trained_model` with every argument positional, so equal calls share one cache entry."""
    data = multitask_data(512, num_tasks, amplitudes=amplitudes, seed=seed)
    return train_conditional_moe(data, key, num_experts, seed=seed)


def held_out(num_tasks: int = 4, amplitudes=None, seed: int = 0) -> MultiTask:
    """Test examples of the tasks `trained_model` learns (other draws of the same teachers)."""
    return multitask_data(512, num_tasks, amplitudes=amplitudes, seed=seed + 100)


def subnetwork_report(model: ConditionalMoE, key: str, task: int, keep: int | None = None,
                      seed: int = 0) -> dict:
    """Slice out the experts a task's training examples use (the `keep` most used; all by default).

    For a model from `trained_model(key, E, 4, seed=seed)`. -> the slice's fraction of the full
    model's parameters, its test error on the task next to the full model's, and the largest
    difference between their outputs on the task's test examples.
    """
    experts = experts_used(model, multitask_data(512, 4, seed=seed), key, task)[:keep]
    sub = extract_subnetwork(model, experts)
    test = held_out(seed=seed)
    mine = test.task == task
    x, k = expert_inputs(test)[mine], routing_key(test, key)[mine]
    with torch.no_grad():
        full, _, _ = model(x, k)
        alone = subnetwork_forward(sub, x, k)
    return {"experts": len(experts), "fraction": sub.num_params() / num_params(model),
            "error": relative_error(alone, test.y[mine]),
            "full_error": relative_error(full, test.y[mine]),
            "max_output_gap": (alone - full).abs().max().item()}


def mean_report(reports) -> dict:
    """The average of each number over tasks (the largest, for the output gap)."""
    merged = {}
    for name in reports[0]:
        values = [r[name] for r in reports]
        merged[name] = max(values) if name == "max_output_gap" else sum(values) / len(values)
    return merged


@one_thread()
def task_level_moe_claim(seed: int = 0) -> Claim:
    """Beyond Distillation: task sub-networks of a task-routed MoE, and of a token-routed one."""
    with timed() as t:
        task_model = trained_model("task", 4, seed=seed)
        token_model = trained_model("token", 4, seed=seed)
        task_sub = mean_report([subnetwork_report(task_model, "task", i, seed=seed)
                                for i in range(4)])
        token_all = mean_report([subnetwork_report(token_model, "token", i, seed=seed)
                                 for i in range(4)])
        token_top = mean_report([subnetwork_report(token_model, "token", i, keep=1, seed=seed)
                                 for i in range(4)])
    measured = {**{f"task_sub_{n}": v for n, v in task_sub.items()},
                **{f"token_used_{n}": v for n, v in token_all.items()},
                **{f"token_top1_{n}": v for n, v in token_top.items()}}
    holds = (task_sub["fraction"] <= 0.3 and task_sub["max_output_gap"] <= 1e-5
             and token_all["fraction"] >= 0.75
             and token_top["error"] >= 1.5 * token_top["full_error"])
    return Claim(
        paper="Kudugunta et al. 2021, Beyond Distillation (task-level MoE)",
        statement="Routing by task lets each task's sub-network be extracted for inference at "
                  "a fraction of the model's size with no loss of quality; a token-routed MoE "
                  "spreads a task over all experts, so slicing it loses quality.",
        summary=(f"4 tasks, 4 experts, top-1. Task-MoE: a task's slice is "
                 f"{task_sub['experts']:.1f} expert, {task_sub['fraction']:.0%} of the parameters, "
                 f"error {task_sub['error']:.3f} vs {task_sub['full_error']:.3f} for the full "
                 f"model (outputs equal to {task_sub['max_output_gap']:.0e}). Token-MoE: a task's "
                 f"tokens "
                 f"use {token_all['experts']:.1f} experts ({token_all['fraction']:.0%} of the "
                 f"parameters); its most used expert alone ({token_top['fraction']:.0%}) has error "
                 f"{token_top['error']:.3f} vs {token_top['full_error']:.3f} full (needs slice "
                 f"<= 30%, equal outputs, token slice >= 1.5x error)"),
        holds=holds, measured=measured, seconds=t.seconds)


@one_thread()
def conditional_moe_claim(seed: int = 0) -> Claim:
    """Uni-Perceiver-MoE: errors of a dense shared model and of MoEs routed on each key."""
    with timed() as t:
        test = held_out(seed=seed)
        errors = {"dense": task_errors(trained_model("task", 1, seed=seed), test, "task")}
        for key in KEYS:
            errors[key] = task_errors(trained_model(key, 4, seed=seed), test, key)
    measured = {f"{name}_error": sum(e) / len(e) for name, e in errors.items()}
    dense = measured["dense_error"]
    ratio = {key: measured[f"{key}_error"] / dense for key in KEYS}
    holds = ratio["task"] <= 0.6 and ratio["attribute"] < 1.0
    measured.update({f"{key}_over_dense": r for key, r in ratio.items()})
    return Claim(
        paper="Zhu et al. 2022, Uni-Perceiver-MoE (conditional MoE)",
        statement="Routing on a condition of the token (its modality/attribute, or its task) "
                  "mitigates the interference between tasks and modalities that degrades a "
                  "generalist model sharing all parameters.",
        summary=(f"4 conflicting tasks x 2 modalities, same compute per example (one expert of "
                 f"width 8 = the dense layer). Relative test error: dense {dense:.3f}, "
                 + ", ".join(f"{key}-routed {measured[f'{key}_error']:.3f} ({ratio[key]:.2f}x)"
                             for key in KEYS)
                 + f" (needs task <= 0.6x, attribute < 1x); routing on the token's features "
                   f"{'does not reduce' if ratio['token'] >= 1 else 'also reduces'} it here"),
        holds=holds, measured=measured, seconds=t.seconds)


def old_task_error(num_experts: int, num_tasks: int, amplitudes, seed: int) -> float:
    """Mean test error on tasks 0-2 of a task-routed model trained on `num_tasks` tasks."""
    model = trained_model("task", num_experts, num_tasks, amplitudes, seed)
    errors = task_errors(model, held_out(num_tasks, amplitudes, seed), "task")
    return sum(errors[:3]) / 3


def old_task_experts(num_tasks: int, amplitudes, seed: int) -> int:
    """How many distinct experts tasks 0-2 use in the task-routed MoE trained on `num_tasks`."""
    model = trained_model("task", 4, num_tasks, amplitudes, seed)
    data = multitask_data(512, num_tasks, amplitudes=amplitudes, seed=seed)
    return len({experts_used(model, data, "task", i)[0].item() for i in range(3)})


@one_thread()
def task_aware_gating_claim(seed: int = 0) -> Claim:
    """Gupta et al. 2022: old tasks' error before and after adding a loud, unrelated task.

    Both MoEs have 4 experts. With 3 tasks one expert idles, and the balancing loss keeps pulling
    router probability towards it, which costs the old tasks a little: that, not the added task,
    is why their error can drop once the 4th task takes the idle expert.
    """
    loud = (1.0, 1.0, 1.0, 3.0)
    with timed() as t:
        measured = {f"{name}_{when}": old_task_error(experts, num_tasks, amplitudes, seed)
                    for name, experts in (("dense", 1), ("moe", 4))
                    for when, num_tasks, amplitudes in (("before", 3, None), ("after", 4, loud))}
        measured["moe_experts_before"] = old_task_experts(3, None, seed)
        measured["moe_experts_after"] = old_task_experts(4, loud, seed)
    m = measured
    m["dense_growth"] = m["dense_after"] / m["dense_before"]
    m["moe_growth"] = m["moe_after"] / m["moe_before"]
    holds = (m["dense_growth"] >= 1.2 and m["moe_growth"] <= 1.1
             and m["moe_after"] <= 0.5 * m["dense_after"])
    return Claim(
        paper="Gupta et al. 2022, Sparsely Activated MoE are Robust Multi-Task Learners",
        statement="With task-aware gating, adding an unrelated task does not hurt the existing "
                  "tasks, which keep their experts; a dense multi-task model shares its weights "
                  "and degrades.",
        summary=(f"3 tasks, then a 4th unrelated task with 3x the target scale. Old tasks' error: "
                 f"dense {m['dense_before']:.3f} -> {m['dense_after']:.3f} "
                 f"({m['dense_growth']:.2f}x); task-routed MoE (4 experts) {m['moe_before']:.3f} "
                 f"-> {m['moe_after']:.3f} ({m['moe_growth']:.2f}x), the 3 old tasks on "
                 f"{m['moe_experts_before']} -> {m['moe_experts_after']} distinct experts "
                 f"(needs dense >= 1.2x, MoE <= 1.1x and MoE after <= 0.5x dense after)"),
        holds=holds, measured=measured, seconds=t.seconds)
