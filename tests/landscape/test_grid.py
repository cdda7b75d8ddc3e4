"""The grid of losses: the (0, 0) point is the model's loss, the surface's layout, non-finite losses."""
import pytest
import torch
import torch.nn.functional as F

from course.landscape import grid, models


def problem(widths=(2, 16, 3), n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = models.mlp(widths, seed=seed)
    x, labels = torch.randn(n, widths[0], generator=g), torch.randint(widths[-1], (n,), generator=g)
    theta = models.flatten(model)
    return model, x, labels, theta, torch.randn(theta.shape, generator=g), torch.randn(theta.shape, generator=g)


def test_the_grid_loss_at_the_origin_is_the_models_loss():
    model, x, labels, theta, d1, d2 = problem()
    losses = grid.grid_loss(x, labels, theta, d1, d2, torch.zeros(3, 2), (2, 16, 3))
    torch.testing.assert_close(losses, F.cross_entropy(model(x), labels).detach().expand(3))


def test_the_surface_is_alpha_by_beta_and_each_point_is_its_parameters_loss():
    widths = (2, 16, 3)
    _, x, labels, theta, d1, d2 = problem(widths)
    alphas, betas = torch.linspace(-1, 1, 4), torch.linspace(-0.5, 0.5, 3)
    s = grid.surface(x, labels, theta, d1, d2, alphas, betas, widths, backend="reference")
    assert s.shape == (4, 3)
    expected = models.mlp_loss(theta + alphas[2] * d1 + betas[0] * d2, x, labels, widths)
    torch.testing.assert_close(s[2, 0], expected)


def test_non_finite_losses_come_back_at_their_points_not_as_errors():
    widths = (2, 16, 3)
    _, x, labels, theta, d1, d2 = problem(widths)
    coords = torch.tensor([[0.0, 0.0], [1e37, 0.0]])
    losses = grid.grid_loss(x, labels, theta, d1, d2, coords, widths)
    assert torch.isfinite(losses[0]) and not torch.isfinite(losses[1])


def test_bad_input_names_the_argument():
    widths = (2, 16, 3)
    _, x, labels, theta, d1, d2 = problem(widths)
    with pytest.raises(ValueError, match=r"`coords` must be \[G, 2\]"):
        grid.grid_loss(x, labels, theta, d1, d2, torch.zeros(4, 3), widths)
    with pytest.raises(ValueError, match="`d1` must be of shape"):
        grid.grid_loss(x, labels, theta, d1[:-1], d2, torch.zeros(4, 2), widths)
    with pytest.raises(ValueError, match="`labels` must be in"):
        grid.grid_loss(x, labels + 3, theta, d1, d2, torch.zeros(4, 2), widths)
    with pytest.raises(TypeError, match="`d2` must have x's dtype"):
        grid.grid_loss(x, labels, theta, d1, d2.double(), torch.zeros(4, 2), widths)
    with pytest.raises(ValueError, match="regular S x S grid"):
        grid.regular_grid(torch.rand(9, 2), "here")
