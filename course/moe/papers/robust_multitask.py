"""Gupta et al. 2022, "Sparsely Activated Mixture-of-Experts are Robust Multi-Task Learners":
with task-aware gating, an unrelated task added to the mix takes its own experts instead of
overwriting the weights the other tasks share.

On the multi-task toy of `multitask_toy`, a dense model and a task-routed MoE (4 experts) are
trained on three tasks, then again on the three plus a fourth, unrelated task with three times the
target scale (a loud task dominates a shared loss). Measured: the old tasks' error before and after.
With 3 tasks one expert idles, and the balancing loss keeps pulling router probability towards it,
which costs the old tasks a little: that, not the added task, is why their error can drop once the
fourth task takes the idle expert.
"""
from course.claims import REPRODUCTION, Claim
from course.moe.papers.multitask_toy import (experts_used, held_out, multitask_data, task_errors,
                                             trained_model)

LOUD = (1.0, 1.0, 1.0, 3.0)  # target scale of each task after the fourth is added


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


def task_aware_gating_experiment(seed: int) -> dict:
    """Old tasks' error before and after adding a loud, unrelated task, dense and task-routed."""
    m = {f"{name}_{when}": old_task_error(experts, num_tasks, amplitudes, seed)
         for name, experts in (("dense", 1), ("moe", 4))
         for when, num_tasks, amplitudes in (("before", 3, None), ("after", 4, LOUD))}
    m["moe_experts_before"] = old_task_experts(3, None, seed)
    m["moe_experts_after"] = old_task_experts(4, LOUD, seed)
    m["dense_growth"] = m["dense_after"] / m["dense_before"]
    m["moe_growth"] = m["moe_after"] / m["moe_before"]
    m["moe_over_dense_after"] = m["moe_after"] / m["dense_after"]
    return m


CLAIM = Claim(
    paper="Gupta et al. 2022",
    citation="Sparsely Activated Mixture-of-Experts are Robust Multi-Task Learners "
             "(arXiv:2204.07689), section 4",
    statement="with task-aware gating, adding an unrelated task does not hurt the existing tasks, "
              "which keep their experts; a dense multi-task model shares its weights and degrades",
    kind=REPRODUCTION,
    experiment=task_aware_gating_experiment,
    thresholds=("dense_growth >= 1.2", "moe_growth <= 1.1", "moe_over_dense_after <= 0.5"),
    summary=lambda m: (
        f"3 tasks, then a 4th unrelated task with 3x the target scale. Old tasks' error: dense "
        f"{m['dense_before']:.3f} -> {m['dense_after']:.3f} ({m['dense_growth']:.2f}x); task-routed "
        f"MoE (4 experts) {m['moe_before']:.3f} -> {m['moe_after']:.3f} ({m['moe_growth']:.2f}x), "
        f"the 3 old tasks on {m['moe_experts_before']} -> {m['moe_experts_after']} distinct experts"),
)
