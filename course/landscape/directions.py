"""Directions in parameter space, and trajectories projected onto the plane they span.

Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"
(arXiv:1712.09913):
- section 4, filter normalisation: a random Gaussian direction d is rescaled filter by filter,
  d_{i,j} <- d_{i,j} / |d_{i,j}| * |theta_{i,j}|, where d_{i,j} is the j-th filter of layer i (for a
  fully connected layer, the weights into unit j: row j of W_i). A plot then compares like with like
  across layers and networks whose weights differ in scale (ReLU networks are invariant to scaling a
  unit's input weights up and its output weights down). The paper leaves biases (and batch norm)
  out of the directions: their entries are set to zero here;
- section 7, trajectories: random directions are nearly orthogonal to an optimisation path in high
  dimension, so the path is drawn on the plane of the first two principal components of
  [theta_i - theta_n], i = 0..n-1, and each theta_i is placed by its coordinates on them.

Zero norms: a filter of theta that is all zero gets a zero direction (|theta_ij| = 0 scales it to 0);
a direction that is zero everywhere is refused, since it spans no axis.
"""
import torch

from course.checks import check_shape, check_tensor
from course.landscape.models import check_widths, parameter_count, unflatten


def check_direction(where: str, name: str, d, theta):
    check_tensor(where, name, d, ndim=1, kind="float")
    check_shape(where, name, d, tuple(theta.shape), "[P] (theta's shape)")
    if not torch.isfinite(d).all():
        raise ValueError(f"{where}: `{name}` must be finite everywhere; got "
                         f"{int((~torch.isfinite(d)).sum())} NaN or infinite value(s).")
    if d.numel() and not d.abs().max() > 0:
        raise ValueError(f"{where}: `{name}` must be a nonzero direction (a zero direction spans no "
                         "axis); got all zeros.")


def random_direction(theta: torch.Tensor, seed: int) -> torch.Tensor:
    """A Gaussian direction [P] of theta's dtype, from the seed."""
    check_tensor("landscape.random_direction", "theta", theta, ndim=1, kind="float")
    g = torch.Generator().manual_seed(seed)
    return torch.randn(theta.shape, generator=g, dtype=torch.float64).to(theta.dtype)


def filter_normalize(d: torch.Tensor, theta: torch.Tensor, widths) -> torch.Tensor:
    """d [P] rescaled so that each unit's incoming weights have theta's norm there; biases zeroed.
    (Li et al. 2018, section 4.)"""
    widths = check_widths("landscape.filter_normalize", widths)
    check_tensor("landscape.filter_normalize", "theta", theta, ndim=1, kind="float")
    check_shape("landscape.filter_normalize", "theta", theta, (parameter_count(widths),), "[P]")
    check_direction("landscape.filter_normalize", "d", d, theta)
    out = torch.zeros_like(d)
    for (Wd, _), (Wt, _), (Wo, bo) in zip(unflatten(d, widths), unflatten(theta, widths),
                                          unflatten(out, widths)):
        norms_d = Wd.norm(dim=1, keepdim=True)  # [out, 1]: one filter per unit
        norms_t = Wt.norm(dim=1, keepdim=True)
        Wo.copy_(torch.where(norms_d > 0, Wd / norms_d.clamp_min(torch.finfo(d.dtype).tiny), 0) * norms_t)
        bo.zero_()
    return out


def filter_normalized_directions(theta: torch.Tensor, widths, seed: int) -> tuple:
    """Two filter-normalised random directions (seeds `seed` and `seed + 1`)."""
    return tuple(filter_normalize(random_direction(theta, s), theta, widths) for s in (seed, seed + 1))


def pca_directions(trajectory: torch.Tensor) -> tuple:
    """(d1, d2, explained): the first two principal directions [P] of theta_i - theta_n over the
    trajectory [T, P] (last row theta_n), unit norm, and the fractions of variance they explain.
    (Li et al. 2018, section 7.)"""
    check_tensor("landscape.pca_directions", "trajectory", trajectory, ndim=2, kind="float")
    if trajectory.shape[0] < 3:
        raise ValueError("landscape.pca_directions: `trajectory` must hold at least 3 points [T, P] "
                         f"(two differences span the plane); got shape {tuple(trajectory.shape)}.")
    M = (trajectory[:-1] - trajectory[-1]).double()  # [T-1, P]
    M = M - M.mean(0)  # PCA of the differences, centred
    _, S, Vh = torch.linalg.svd(M, full_matrices=False)
    if not S[1] > 0:
        raise ValueError("landscape.pca_directions: the trajectory moves along a single line (second "
                         "singular value 0); a plane needs two independent moves.")
    explained = (S ** 2 / (S ** 2).sum())[:2]
    return (Vh[0].to(trajectory.dtype), Vh[1].to(trajectory.dtype), tuple(float(e) for e in explained))


def project(points: torch.Tensor, theta: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """The plane coordinates [T, 2] of points [T, P] around theta: the least-squares (alpha, beta)
    with theta + alpha d1 + beta d2 closest to each point (exact on the plane; d1, d2 need not be
    orthogonal)."""
    check_tensor("landscape.project", "points", points, ndim=2, kind="float")
    check_direction("landscape.project", "d1", d1, theta)
    check_direction("landscape.project", "d2", d2, theta)
    if points.shape[1] != theta.shape[0]:
        raise ValueError(f"landscape.project: `points` [T, P] must have P = {theta.shape[0]}; got shape "
                         f"{tuple(points.shape)}.")
    A = torch.stack([d1, d2], dim=1).double()  # [P, 2]
    rhs = (points - theta).double().T  # [P, T]
    return torch.linalg.lstsq(A, rhs).solution.T.to(points.dtype)
