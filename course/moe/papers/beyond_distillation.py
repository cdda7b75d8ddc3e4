"""Kudugunta et al. 2021, "Beyond Distillation: Task-level Mixture-of-Experts for Efficient
Inference": route on the task, not the token, and a task's sub-network can be sliced out to serve.

The router reads the task id instead of the token, G(x) = Softmax(W_g task_emb) (section 3), so all
tokens of a task take the same experts; the experts those tokens use, with the router, are the
task's sub-network, served alone at a fraction of the model's size. A token-routed MoE spreads each
task over all its experts, so a slice of it loses quality. The model and data are the multi-task
toy of `multitask_toy`.

This is a demonstration: a router whose only input is the task one-hot sends every token of a task
to one expert by construction, so the slice equals the full model on that task. What is measured is
how small the slice is, and what slicing a token-routed model costs.
"""
from typing import NamedTuple

import torch

from course.claims import DEMONSTRATION, Claim
from course.metrics import parameter_count, relative_mse
from course.moe.conditional import ConditionalMoE
from course.moe.papers.multitask_toy import (MultiTask, expert_inputs, experts_used, held_out,
                                             multitask_data, routing_key, trained_model)


class SubNetwork(NamedTuple):
    """Experts sliced out of a trained ConditionalMoE, with its (tiny) router."""

    experts: torch.Tensor   # [E_sub] ids of the kept experts in the full model
    w_router: torch.Tensor  # [d_key, E] the full router, to compute the same gate values
    w1: torch.Tensor        # [E_sub, d_in, H]
    w2: torch.Tensor        # [E_sub, H, 1]

    def num_params(self) -> int:
        return self.w_router.numel() + self.w1.numel() + self.w2.numel()


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


def subnetwork_report(model: ConditionalMoE, key: str, task: int, train: MultiTask, test: MultiTask,
                      keep: int | None = None) -> dict:
    """Slice out the experts a task's training examples use (the `keep` most used; all by default).

    For a model trained on `train` (`trained_model`). -> the slice's fraction of the full model's
    parameters, its error on the task's `test` examples next to the full model's, and the largest
    difference between their outputs there.
    """
    experts = experts_used(model, train, key, task)[:keep]
    sub = extract_subnetwork(model, experts)
    mine = test.task == task
    x, k = expert_inputs(test)[mine], routing_key(test, key)[mine]
    with torch.no_grad():
        full, _, _ = model(x, k)
        alone = subnetwork_forward(sub, x, k)
    return {"experts": len(experts), "fraction": sub.num_params() / parameter_count(model),
            "error": relative_mse(alone, test.y[mine]),
            "full_error": relative_mse(full, test.y[mine]),
            "max_output_gap": (alone - full).abs().max().item()}


def mean_report(reports) -> dict:
    """The average of each number over tasks (the largest, for the output gap)."""
    merged = {}
    for name in reports[0]:
        values = [r[name] for r in reports]
        merged[name] = max(values) if name == "max_output_gap" else sum(values) / len(values)
    return merged


def beyond_distillation_experiment(seed: int) -> dict:
    """Task sub-networks of a task-routed MoE, and of a token-routed one (4 tasks, 4 experts)."""
    task_model = trained_model("task", 4, seed=seed)
    token_model = trained_model("token", 4, seed=seed)
    train, test = multitask_data(512, 4, seed=seed), held_out(seed=seed)
    task_sub = mean_report([subnetwork_report(task_model, "task", i, train, test) for i in range(4)])
    token_all = mean_report([subnetwork_report(token_model, "token", i, train, test)
                             for i in range(4)])
    token_top = mean_report([subnetwork_report(token_model, "token", i, train, test, keep=1)
                             for i in range(4)])
    m = {**{f"task_sub_{n}": v for n, v in task_sub.items()},
         **{f"token_used_{n}": v for n, v in token_all.items()},
         **{f"token_top1_{n}": v for n, v in token_top.items()}}
    m["token_slice_error_growth"] = m["token_top1_error"] / m["token_top1_full_error"]
    return m


CLAIM = Claim(
    paper="Kudugunta et al. 2021 (Beyond Distillation)",
    citation="Beyond Distillation: Task-level Mixture-of-Experts for Efficient Inference "
             "(arXiv:2110.03742), sections 3 and 5",
    statement="routing by task lets each task's sub-network be extracted for inference at a "
              "fraction of the model's size with no loss of quality; a token-routed MoE spreads a "
              "task over all experts, so slicing it loses quality",
    kind=DEMONSTRATION,
    experiment=beyond_distillation_experiment,
    thresholds=("task_sub_experts == 1", "task_sub_fraction <= 0.3", "task_sub_max_output_gap <= 1e-5",
                "token_used_fraction >= 0.75", "token_slice_error_growth >= 1.5"),
    summary=lambda m: (
        f"4 tasks, 4 experts, top-1. Task-MoE: a task's slice is {m['task_sub_experts']:.1f} "
        f"expert, {m['task_sub_fraction']:.0%} of the parameters, error "
        f"{m['task_sub_error']:.3f} vs {m['task_sub_full_error']:.3f} for the full model (outputs "
        f"equal to {m['task_sub_max_output_gap']:.0e}). Token-MoE: a task's tokens use "
        f"{m['token_used_experts']:.1f} experts ({m['token_used_fraction']:.0%} of the "
        f"parameters); its most used expert alone ({m['token_top1_fraction']:.0%}) has error "
        f"{m['token_top1_error']:.3f} vs {m['token_top1_full_error']:.3f} for the full model"),
)
