"""The intrinsic dimension of an objective landscape: train only d random directions, theta_0 + P z.

Li, Farkhoor, Liu and Yosinski 2018, "Measuring the Intrinsic Dimension of Objective Landscapes"
(arXiv:1804.08838). Section 2: the network's D parameters are theta = theta_0 + P z, with theta_0 the
random initialisation, P [D, d] a fixed random projection with unit columns and only z [d] trained
(from z = 0). Sweeping d upwards, the intrinsic dimension d_int90 is the smallest d whose trained
model reaches 90% of the performance (here test accuracy) of the same network trained in all D
directions. Section 3: d_int90 is far below D (MNIST: 750 of 199,210 for a fully connected net), and
the structured Fastfood projection (section 2, O(D log D) a product, `subspace.FastfoodProjection`)
gives the same d_int90 as a dense Gaussian P.

The toy: 3 interleaved spiral arms in 2-D (`tasks.spirals`), an MLP (2, 28, 28, 3) of D = 983
parameters. The full model and every subspace model are trained by Adam for a fixed number of steps
(`course.train.fit`). The sweep is d in 2, 4, ..., 256, searched by bisection (accuracy grows with d,
as in the paper's Figure 1), so three or four subspace trainings find d_int90 for each projection.
"""
import math
from functools import lru_cache

import torch

from course.claims import REPRODUCTION, Claim
from course.landscape import models, subspace, tasks
from course.train import fit, seeded

WIDTHS = (2, 28, 28, 3)  # D = 983: Fastfood pads to L = 1024
DIMS = (2, 4, 8, 16, 32, 64, 128, 256)  # the sweep of d
FRACTION = 0.9  # d_int90: 90% of the full model's test accuracy
FULL_STEPS, FULL_LR = 300, 0.01
SUBSPACE_STEPS, SUBSPACE_LR = 200, 0.1
N_TRAIN, N_TEST = 300, 600


@lru_cache(maxsize=4)
def task(seed: int) -> tasks.Task:
    return tasks.spirals(n_train=N_TRAIN, n_test=N_TEST, seed=seed)


def test_accuracy(theta: torch.Tensor, task: tasks.Task) -> float:
    """Accuracy of the MLP at theta [D] on the task's test split."""
    with torch.no_grad():
        logits = models.mlp_logits(theta, task.x_test, WIDTHS)
        return float((logits.argmax(1) == task.y_test).float().mean())


def train_full(seed: int) -> float:
    """The baseline: the test accuracy of the MLP trained in all D directions."""
    t = task(seed)
    theta = models.flatten(models.mlp(WIDTHS, seed=seed)).requires_grad_(True)
    fit([theta], lambda: models.mlp_loss(theta, t.x_train, t.y_train, WIDTHS), FULL_STEPS, FULL_LR,
        seed=seed)
    return test_accuracy(theta.detach(), t)


def make_projection(kind: str, D: int, d: int, seed: int):
    """A dense P [D, d] (`kind` "dense") or a `FastfoodProjection` ("fastfood"), seeded."""
    if kind == "dense":
        return subspace.dense_projection(D, d, seed=seed)
    if kind == "fastfood":
        return subspace.FastfoodProjection(D, d, seed=seed)
    raise ValueError(f"intrinsic_dimension.make_projection: `kind` must be 'dense' or 'fastfood'; "
                     f"got {kind!r}.")


def train_subspace(seed: int, kind: str, d: int) -> float:
    """Train z [d] from 0 in theta_0 + P z (section 2); the test accuracy it reaches."""
    t = task(seed)
    theta0 = models.flatten(models.mlp(WIDTHS, seed=seed))
    projection = make_projection(kind, len(theta0), d, seed=1000 + seed)
    z = torch.zeros(d, requires_grad=True)
    fit([z], lambda: models.mlp_loss(subspace.subspace_theta(theta0, projection, z), t.x_train,
                                     t.y_train, WIDTHS), SUBSPACE_STEPS, SUBSPACE_LR, seed=seed)
    return test_accuracy(subspace.subspace_theta(theta0, projection, z.detach()), t)


def smallest_reaching(dims, reaches) -> int | None:
    """The smallest d of the ascending `dims` with reaches(d) true, by bisection (reaches is taken to
    be monotone in d); None if even the largest does not."""
    lo, hi = 0, len(dims)  # dims[hi] reaches; hi = len(dims): none known to
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(dims[mid]):
            hi = mid
        else:
            lo = mid + 1
    return dims[lo] if lo < len(dims) else None


def intrinsic_dimension(seed: int, kind: str, target: float) -> tuple[int | None, dict]:
    """d_int90 on the sweep `DIMS` for one projection, and the accuracy at each d trained."""
    accuracies = {}

    def reaches(d):
        accuracies[d] = train_subspace(seed, kind, d)
        return accuracies[d] >= target

    return smallest_reaching(DIMS, reaches), accuracies


def intrinsic_dimension_experiment(seed: int) -> dict:
    """d_int90 of the dense and the Fastfood projections, against the parameter count D."""
    with seeded(seed):
        full = train_full(seed)
        target = FRACTION * full
        m = {"parameters": float(models.parameter_count(WIDTHS)), "full_accuracy": full}
        for kind in ("dense", "fastfood"):
            d_int, accuracies = intrinsic_dimension(seed, kind, target)
            m[f"{kind}_d_int90"] = float(d_int) if d_int is not None else math.inf
            m[f"{kind}_accuracy_at_d_int90"] = accuracies.get(d_int, math.nan)
            m[f"{kind}_fraction_of_parameters"] = m[f"{kind}_d_int90"] / m["parameters"]
    m["abs_log2_fastfood_over_dense"] = abs(math.log2(m["fastfood_d_int90"] / m["dense_d_int90"]))
    return m


CLAIM = Claim(
    paper="Li et al. 2018",
    citation="Measuring the Intrinsic Dimension of Objective Landscapes (arXiv:1804.08838), sections 2 "
             "(random subspace training, dense and Fastfood projections, d_int90) and 3 (MNIST: "
             "d_int90 = 750 of 199,210 parameters, about the same for both projections)",
    statement="training only d random directions reaches 90% of the full network's performance at a d "
              "far smaller than the parameter count, and the Fastfood projection gives about the same "
              "d_int90 as a dense Gaussian one",
    kind=REPRODUCTION,
    experiment=intrinsic_dimension_experiment,
    thresholds=("dense_fraction_of_parameters <= 0.1", "fastfood_fraction_of_parameters <= 0.1",
                "abs_log2_fastfood_over_dense <= 1"),
    summary=lambda m: (
        f"MLP {WIDTHS} with D = {m['parameters']:.0f} parameters, full test accuracy "
        f"{m['full_accuracy']:.3f}: d_int90 = {m['dense_d_int90']:.0f} with a dense P, "
        f"{m['fastfood_d_int90']:.0f} with Fastfood ({m['dense_fraction_of_parameters']:.1%} and "
        f"{m['fastfood_fraction_of_parameters']:.1%} of D)"),
)
