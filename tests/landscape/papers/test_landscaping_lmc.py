"""Landscaping LMC's pieces: the second-order midpoint estimate, the plane through three solutions."""
import pytest
import torch

from course.landscape import grid, models
from course.landscape.papers import landscaping_lmc as ll


def small_problem():
    widths = (2, 8, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    labels = torch.randint(3, (50,), generator=g)
    theta = models.flatten(models.mlp(widths, seed=0)).double()
    return widths, x, labels, theta, torch.randn(theta.shape, generator=g, dtype=torch.float64)


def test_the_midpoint_estimate_approaches_the_rise_of_the_midpoint_for_close_networks():
    widths, x, labels, theta, d = small_problem()
    for scale in (0.1, 0.025):
        a, b = theta - scale * d / 2, theta + scale * d / 2
        ends = models.mlp_loss(a, x, labels, widths) + models.mlp_loss(b, x, labels, widths)
        rise = float(models.mlp_loss(theta, x, labels, widths) - ends / 2)
        estimate = ll.midpoint_estimate(x, labels, a, b, widths)
        assert estimate * rise > 0 and abs(estimate - rise) < 0.25 * abs(rise)  # ReLU kinks: not exact
    quadratic_widths = (2, 3)  # no hidden layer: a smooth loss, [1] exact to fourth order
    w = models.flatten(models.mlp(quadratic_widths, seed=1)).double()
    dw = 0.01 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ends = models.mlp_loss(w - dw, x, labels, quadratic_widths) + models.mlp_loss(w + dw, x, labels,
                                                                                 quadratic_widths)
    rise = models.mlp_loss(w, x, labels, quadratic_widths) - ends / 2
    estimate = ll.midpoint_estimate(x, labels, w - dw, w + dw, quadratic_widths)
    assert abs(estimate - float(rise)) < 1e-4 * abs(float(rise))
    with pytest.raises(ValueError, match="`theta_b` must be a network of widths"):
        ll.midpoint_estimate(x, labels, theta, theta[:-1], widths)


def test_the_plane_through_three_solutions_holds_them_at_their_coordinates():
    widths, x, labels, theta, d = small_problem()
    points = (theta, theta + d, theta - 0.5 * d + torch.roll(d, 1))
    origin, d1, d2, coords = ll.plane_through(*points)
    assert abs(float(d1 @ d2)) < 1e-12 and float(d1.norm()) == pytest.approx(1) == float(d2.norm())
    for p, (c1, c2) in zip(points, coords):
        torch.testing.assert_close(origin + c1 * d1 + c2 * d2, p)
    losses = grid.grid_loss(x, labels, origin, d1, d2, coords, widths)
    torch.testing.assert_close(losses, torch.stack([models.mlp_loss(p, x, labels, widths) for p in points]))
    with pytest.raises(ValueError, match="must span a plane"):
        ll.plane_through(theta, theta + d, theta + 2 * d)
    with pytest.raises(ValueError, match="`theta_2` must have theta_0's shape"):
        ll.plane_through(theta, theta + d, theta[:-1])


def test_the_experiment_reads_barriers_and_estimates_from_the_spawned_children(monkeypatch):
    widths, x, labels, theta, d = small_problem()
    far = {k: (theta, theta + d * (1 - k / 300)) for k in ll.SPAWN_STEPS}
    monkeypatch.setattr(ll, "spawned_children", lambda seed: {"widths": widths, "children": far})
    monkeypatch.setattr(ll.pairs_toy, "task", lambda seed: type("T", (), {"x_train": x.float(),
                                                                          "y_train": labels})())
    far.update({k: (a.float(), b.float()) for k, (a, b) in far.items()})
    m = ll.landscaping_experiment(0)
    assert m["barrier_300"] == 0 and m["late_over_early"] == 0  # the same network twice
    assert -1 <= m["estimate_correlation"] <= 1
    assert set(ll.CLAIM.summary(m).split(": ")[0].split()) >= {"barrier", "children"}
