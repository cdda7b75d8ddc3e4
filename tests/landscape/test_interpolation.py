"""Losses along the line between two networks, the barrier, and the Bezier curve."""
import pytest
import torch

from course.landscape import interpolation, models


def test_line_losses_are_the_losses_of_the_mixed_parameters_and_the_barrier_is_above_the_chord():
    widths = (2, 12, 3)
    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(30, 2, generator=g), torch.randint(3, (30,), generator=g)
    a, b = (models.flatten(models.mlp(widths, seed=s)) for s in (0, 1))
    ts = torch.linspace(0, 1, 11)
    losses = interpolation.line_losses(x, labels, a, b, widths, ts, backend="reference")
    torch.testing.assert_close(losses[3], models.mlp_loss((1 - ts[3]) * a + ts[3] * b, x, labels, widths))
    chord = (1 - ts) * losses[0] + ts * losses[-1]
    assert interpolation.barrier(losses, ts) == pytest.approx(float((losses - chord).max()))
    assert interpolation.barrier(torch.tensor([1.0, 0.5, 0.0]), torch.tensor([0.0, 0.5, 1.0])) == 0.0
    assert interpolation.barrier(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([0.0, 0.5, 1.0])) == 1.0


def test_the_bezier_curve_joins_its_ends():
    a, bend, b = torch.zeros(4), torch.ones(4), 2 * torch.ones(4)
    points = interpolation.bezier(a, bend, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(points, torch.tensor([[0.0] * 4, [1.0] * 4, [2.0] * 4]))


def test_networks_of_different_architectures_are_refused():
    x, labels = torch.randn(5, 2), torch.zeros(5, dtype=torch.long)
    a = models.flatten(models.mlp((2, 12, 3), seed=0))
    b = models.flatten(models.mlp((2, 10, 3), seed=0))
    with pytest.raises(ValueError, match="must share one architecture"):
        interpolation.line_losses(x, labels, a, b, (2, 12, 3), torch.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="`ts` must run from 0 to 1"):
        interpolation.barrier(torch.zeros(3), torch.tensor([0.1, 0.5, 1.0]))
