"""The measures the toy experiments report, written once.

relative_mse (regression error as a fraction of the target's variance), accuracy, the normalised
mutual information of two labelings, a least-squares line fit with its R^2, and parameter counts.
"""
import torch

from course.checks import check_int, check_tensor


def relative_mse(prediction, target) -> float:
    """MSE over the target's variance (1 - R^2): 0 is perfect, 1 predicts the mean.

    The variance is the population variance (correction 0) of each output dimension, averaged over
    the dimensions. prediction, target [N] or [N, O] -> float.
    """
    check_tensor("metrics.relative_mse", "prediction", prediction, kind="float")
    check_tensor("metrics.relative_mse", "target", target, kind="float")
    if prediction.shape != target.shape or target.shape[0] < 2:
        raise ValueError(f"metrics.relative_mse: `prediction` and `target` must have one shape with "
                         f"at least 2 rows; got {tuple(prediction.shape)} and {tuple(target.shape)}.")
    variance = target.var(dim=0, correction=0).mean()
    return ((prediction - target).pow(2).mean() / variance).item()


def accuracy(logits, labels) -> float:
    """Fraction of rows whose largest logit is the label. logits [N, C], labels [N] -> float"""
    return (logits.argmax(-1) == labels).float().mean().item()


def entropy(labels) -> float:
    """Shannon entropy (nats) of the empirical distribution of integer labels [N]."""
    p = torch.bincount(labels).float()
    p = p[p > 0] / labels.numel()
    return -(p * p.log()).sum().item()


def normalized_mutual_information(a, b) -> float:
    """NMI(a, b) = I(a; b) / mean(H(a), H(b)) of two labelings [N] (1 when they match up to renaming).

    The arithmetic-mean normalisation is scikit-learn's default; two constant labelings score 1.
    """
    where = "metrics.normalized_mutual_information"
    check_tensor(where, "a", a, ndim=1, kind="int")
    check_tensor(where, "b", b, ndim=1, kind="int")
    if a.shape != b.shape:
        raise ValueError(f"{where}: `a` and `b` must have one shape; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}.")
    h_a, h_b = entropy(a), entropy(b)
    if h_a == 0 and h_b == 0:
        return 1.0
    joint = a.long() * (int(b.max()) + 1) + b.long()  # one label per (a, b) pair
    mutual = h_a + h_b - entropy(joint)
    return max(0.0, mutual / ((h_a + h_b) / 2))


def linear_fit(x, y) -> tuple[float, float]:
    """Least-squares slope and R^2 of y on x. [N], [N] -> (slope, r2); NaNs for fewer than 3 points."""
    if x.numel() < 3:
        return float("nan"), float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    slope = (xc * yc).sum() / (xc * xc).sum()
    residual = yc - slope * xc
    return slope.item(), (1 - (residual ** 2).sum() / (yc ** 2).sum()).item()


def parameter_count(module) -> int:
    """Number of parameters of a torch module (every tensor of `module.parameters()`)."""
    return sum(p.numel() for p in module.parameters())


def kmeans(x, k: int, iterations: int = 30, seed: int = 0):
    """Lloyd's k-means from k distinct random points: x [N, D] -> assignment [N] in [0, k), centres [k, D].

    A centre that loses all its points stays where it was.
    """
    where = "metrics.kmeans"
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_int(where, "k", k, low=1, high=x.shape[0])
    check_int(where, "iterations", iterations, low=1)
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(x.shape[0], generator=g)[:k]].clone()
    for _ in range(iterations):
        assignment = torch.cdist(x, centres).argmin(1)  # [N]
        counts = torch.bincount(assignment, minlength=k)  # [k]
        sums = torch.zeros_like(centres).index_add_(0, assignment, x)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return torch.cdist(x, centres).argmin(1), centres
