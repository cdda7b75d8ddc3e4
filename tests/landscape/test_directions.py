"""Random, filter-normalised and PCA directions, and projection onto their plane."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape import directions, models


@settings(max_examples=20, deadline=None)
@given(widths=st.lists(st.integers(1, 8), min_size=2, max_size=4).map(tuple), seed=st.integers(0, 50))
def test_filter_normalised_directions_have_the_filters_norms(widths, seed):
    theta = models.flatten(models.mlp(widths, seed=seed))
    d = directions.filter_normalize(directions.random_direction(theta, seed), theta, widths)
    for (Wd, bd), (Wt, _) in zip(models.unflatten(d, widths), models.unflatten(theta, widths)):
        torch.testing.assert_close(Wd.norm(dim=1), Wt.norm(dim=1))  # one filter per unit
        assert torch.equal(bd, torch.zeros_like(bd))  # biases left out (Li et al., section 4)


def test_a_zero_filter_gets_a_zero_direction_and_a_zero_direction_is_refused():
    widths = (3, 4, 2)
    theta = models.flatten(models.mlp(widths, seed=0))
    models.unflatten(theta, widths)[0][0][1].zero_()  # unit 1 of layer 1 has no incoming weights
    d = directions.filter_normalize(directions.random_direction(theta, 1), theta, widths)
    assert torch.equal(models.unflatten(d, widths)[0][0][1], torch.zeros(3))
    assert torch.isfinite(d).all()
    with pytest.raises(ValueError, match="`d` must be a nonzero direction"):
        directions.filter_normalize(torch.zeros_like(theta), theta, widths)
    with pytest.raises(ValueError, match="`d` must be finite"):
        directions.filter_normalize(torch.full_like(theta, float("nan")), theta, widths)


def test_pca_finds_the_plane_of_a_planar_path_and_projection_recovers_its_coordinates():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    coords = torch.stack([torch.linspace(-3, 0, 12, dtype=torch.float64) ** 2,
                          torch.sin(torch.linspace(0, 3, 12, dtype=torch.float64))], dim=1)
    centre = torch.randn(50, generator=g, dtype=torch.float64)
    path = centre + coords[:, :1] * u + coords[:, 1:] * v
    path = torch.cat([path, centre[None]])  # ends at the centre
    d1, d2, explained = directions.pca_directions(path)
    assert sum(explained) == pytest.approx(1.0)
    basis = torch.stack([u, v], dim=1)
    for d in (d1, d2):  # in span(u, v)
        residual = d - basis @ torch.linalg.lstsq(basis, d).solution
        assert residual.norm() < 1e-10
    torch.testing.assert_close(directions.project(path[:-1], centre, u, v), coords)
    with pytest.raises(ValueError, match="at least 3 points"):
        directions.pca_directions(path[:2])
