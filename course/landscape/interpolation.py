"""Losses along the path between two networks, and the barrier on it.

Frankle, Dziugaite, Roy and Carbin 2020 ("Linear Mode Connectivity and the Lottery Ticket
Hypothesis") and Entezari et al. 2022 define the loss barrier on the straight line
theta(t) = (1 - t) theta_a + t theta_b as

    B(theta_a, theta_b) = max_t  L(theta(t)) - [(1 - t) L(theta_a) + t L(theta_b)],

the largest rise above the chord between the two ends; two networks are linearly mode connected when
B is about 0. Garipov et al. 2018 ("Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs")
join the two by a learned quadratic Bezier curve instead, theta(t) = (1-t)^2 theta_a +
2 t (1-t) theta_bend + t^2 theta_b, training the bend so that the loss stays low along it.

The line is a grid of points on one axis: `line_losses` calls the `landscape.grid_loss` op with
d1 = theta_b - theta_a and d2 = 0.
"""
import torch

from course.checks import check_tensor
from course.landscape.models import check_widths, parameter_count


def check_pair(where: str, theta_a, theta_b, widths) -> tuple:
    """Two parameter vectors of the same architecture `widths`."""
    widths = check_widths(where, widths)
    P = parameter_count(widths)
    for name, t in (("theta_a", theta_a), ("theta_b", theta_b)):
        check_tensor(where, name, t, ndim=1, kind="float")
        if t.shape[0] != P:
            raise ValueError(f"{where}: `{name}` must be a network of widths {widths} (P = {P} "
                             f"parameters); got {t.shape[0]} parameters: the two networks must share "
                             "one architecture.")
    return widths


def line_losses(x, labels, theta_a, theta_b, widths, ts, backend: str = "auto") -> torch.Tensor:
    """L((1 - t) theta_a + t theta_b) for each t in ts [K] -> [K], through the grid op."""
    from course.landscape.ops import grid_loss

    widths = check_pair("landscape.line_losses", theta_a, theta_b, widths)
    coords = torch.stack([ts.to(x.dtype), torch.zeros_like(ts, dtype=x.dtype)], dim=1)
    return grid_loss(x, labels, theta_a.to(x.dtype), (theta_b - theta_a).to(x.dtype),
                     torch.zeros_like(theta_a, dtype=x.dtype), coords, widths, backend=backend)


def barrier(losses: torch.Tensor, ts: torch.Tensor) -> float:
    """max_t L(t) - [(1 - t) L(0) + t L(1)] over a path's losses [K] at ts [K] (ts[0] = 0, ts[-1] = 1)."""
    check_tensor("landscape.barrier", "losses", losses, ndim=1, kind="float")
    check_tensor("landscape.barrier", "ts", ts, ndim=1, kind="float")
    if len(ts) < 2 or len(losses) != len(ts) or float(ts[0]) != 0.0 or float(ts[-1]) != 1.0:
        raise ValueError("landscape.barrier: `ts` must run from 0 to 1 with one loss each; got "
                         f"{len(ts)} ts from {float(ts[0]) if len(ts) else None} and {len(losses)} losses.")
    chord = (1 - ts) * losses[0] + ts * losses[-1]
    return float((losses - chord).max())


def bezier(theta_a, theta_bend, theta_b, t: torch.Tensor) -> torch.Tensor:
    """Points [K, P] of the quadratic Bezier curve through theta_a, theta_b with control theta_bend."""
    t = t.to(theta_a.dtype)[:, None]
    return (1 - t) ** 2 * theta_a + 2 * t * (1 - t) * theta_bend + t ** 2 * theta_b
