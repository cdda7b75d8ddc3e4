"""Zhu et al. 2022, "Uni-Perceiver-MoE: Learning Sparse Generalist Models with Conditional MoEs":
condition the routing on an attribute of the token or on its task, to mitigate the interference
between tasks and modalities that share one generalist model.

The conditional MoE (section 3) routes on a key z, G(z): the token's representation, its attribute
(here the modality) or its task. On the multi-task toy of `multitask_toy` (four tasks whose targets
conflict on the same inputs, two modalities each), a dense model that shares every parameter is
compared with MoEs routed on each key, at the same computation per example: one expert of width 8
runs per example, as wide as the dense layer.
"""
from course.claims import REPRODUCTION, Claim
from course.moe.papers.multitask_toy import KEYS, held_out, task_errors, trained_model


def conditional_moe_experiment(seed: int) -> dict:
    """Mean relative test error (MSE / Var y) of the dense model and of each key's MoE."""
    test = held_out(seed=seed)
    errors = {"dense": task_errors(trained_model("task", 1, seed=seed), test, "task")}
    for key in KEYS:
        errors[key] = task_errors(trained_model(key, 4, seed=seed), test, key)
    m = {f"{name}_error": sum(e) / len(e) for name, e in errors.items()}
    m.update({f"{key}_over_dense": m[f"{key}_error"] / m["dense_error"] for key in KEYS})
    return m


CLAIM = Claim(
    paper="Zhu et al. 2022 (Uni-Perceiver-MoE)",
    citation="Uni-Perceiver-MoE: Learning Sparse Generalist Models with Conditional MoEs "
             "(arXiv:2206.04674), section 3.2",
    statement="routing on a condition of the token (its modality or attribute, or its task) "
              "mitigates the interference between tasks and modalities that degrades a generalist "
              "model sharing all parameters",
    kind=REPRODUCTION,
    experiment=conditional_moe_experiment,
    thresholds=("task_over_dense <= 0.6", "attribute_over_dense <= 0.9"),
    summary=lambda m: (
        f"4 conflicting tasks x 2 modalities, one expert of width 8 per example (= the dense "
        f"layer). Relative test error: dense {m['dense_error']:.3f}, "
        + ", ".join(f"{key}-routed {m[f'{key}_error']:.3f} ({m[f'{key}_over_dense']:.2f}x)"
                    for key in KEYS)),
)
