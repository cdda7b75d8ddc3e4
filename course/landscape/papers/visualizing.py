"""The method of the family: loss surfaces along directions, and why a path needs PCA directions.

Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(NeurIPS 2018, arXiv:1712.09913), section 7: two random directions in a space of P dimensions are
nearly orthogonal to any given vector (their cosine with it is about 1 / sqrt(P)), so an optimiser's
path projected onto a random plane barely moves: "random directions fail to capture the variation in
optimization trajectories". The plane of the first two principal components of [theta_i - theta_n]
captures most of it (their Figure 9: the two components explain most of the variance).

Measured here on an MLP of about 1,250 parameters trained by SGD on the spirals: the fraction of the
path's variance (its sum of squared distances from the mean point) that lies in the PCA plane, and
the fraction that lies in the plane of two filter-normalised random directions.
"""
import functools

import torch

from course.claims import REPRODUCTION, Claim
from course.landscape import directions, models, tasks

WIDTHS = (2, 32, 32, 3)
STEPS, LR, RECORD_EVERY = 600, 0.3, 10


@functools.lru_cache(maxsize=4)
def sgd_run(seed: int) -> tasks.Run:
    """The MLP trained by full-batch SGD on the seed's spirals, its trajectory every 10 steps."""
    task = tasks.spirals(seed=seed)
    model = models.mlp(WIDTHS, seed=seed)
    return tasks.train(model, task.x_train, task.y_train, STEPS, LR, seed=seed, record_every=RECORD_EVERY)


def captured_variance(trajectory: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> float:
    """The fraction of the path's variance about its mean point that lies in span(d1, d2)."""
    centred = (trajectory - trajectory.mean(0)).double()  # [T, P]
    basis, _ = torch.linalg.qr(torch.stack([d1, d2], dim=1).double())  # [P, 2] orthonormal
    inside = centred @ basis  # [T, 2]
    return float((inside ** 2).sum() / (centred ** 2).sum())


def visualizing_experiment(seed: int) -> dict:
    """Variance of the SGD path captured by the PCA plane and by a filter-normalised random plane."""
    run = sgd_run(seed)
    theta = run.trajectory[-1]
    pca1, pca2, explained = directions.pca_directions(run.trajectory)
    rand1, rand2 = directions.filter_normalized_directions(theta, WIDTHS, seed=seed)
    m = {"pca_captured": captured_variance(run.trajectory, pca1, pca2),
         "random_captured": captured_variance(run.trajectory, rand1, rand2),
         "pc1_explained": explained[0], "pc2_explained": explained[1],
         "parameters": float(theta.numel()), "final_loss": run.fit.final_loss}
    m["pca_over_random"] = m["pca_captured"] / m["random_captured"]
    return m


CLAIM = Claim(
    paper="Li et al. 2018",
    citation="Visualizing the Loss Landscape of Neural Nets (NeurIPS 2018, arXiv:1712.09913), section 7 "
             "and Figure 9",
    statement="random directions capture almost none of an optimisation path's variation, while the "
              "plane of the path's first two principal components captures most of it",
    kind=REPRODUCTION,
    experiment=visualizing_experiment,
    thresholds=("pca_captured >= 0.6", "random_captured <= 0.05"),
    summary=lambda m: (
        f"SGD path of an MLP with {m['parameters']:.0f} parameters: the PCA plane holds "
        f"{100 * m['pca_captured']:.0f}% of its variance (PC1 {100 * m['pc1_explained']:.0f}%, PC2 "
        f"{100 * m['pc2_explained']:.0f}%), two filter-normalised random directions "
        f"{100 * m['random_captured']:.2f}% ({m['pca_over_random']:.0f}x less)"),
)
