"""Li et al. 2018: the pieces of the intrinsic-dimension sweep."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape import models
from course.landscape.papers import intrinsic_dimension as idim


@settings(max_examples=40, deadline=None)
@given(threshold=st.integers(0, 300))
def test_bisection_finds_the_smallest_reaching_dimension_of_the_sweep(threshold):
    calls = []

    def reaches(d):
        calls.append(d)
        return d >= threshold

    expected = next((d for d in idim.DIMS if d >= threshold), None)
    assert idim.smallest_reaching(idim.DIMS, reaches) == expected
    assert len(calls) <= 4  # log2(8 + 1) rounded up


def test_the_width_fits_fastfood_in_one_power_of_two_block():
    D = models.parameter_count(idim.WIDTHS)
    assert idim.make_projection("fastfood", D, 8, seed=0).L == 1024 >= D
    assert idim.make_projection("dense", D, 8, seed=0).shape == (D, 8)
    with pytest.raises(ValueError, match="`kind`"):
        idim.make_projection("sparse", D, 8, seed=0)


def test_a_subspace_run_moves_only_within_the_projection():
    # with d = 2 the trained parameters differ from theta_0 by P z: a vector in P's column space
    t = idim.task(0)
    theta0 = models.flatten(models.mlp(idim.WIDTHS, seed=0))
    P = idim.make_projection("dense", len(theta0), 2, seed=5)
    z = torch.zeros(2, requires_grad=True)
    loss = models.mlp_loss(theta0 + P @ z, t.x_train, t.y_train, idim.WIDTHS)
    (gz,) = torch.autograd.grad(loss, z)
    theta = (theta0 + torch.zeros_like(theta0)).requires_grad_(True)
    (gtheta,) = torch.autograd.grad(models.mlp_loss(theta, t.x_train, t.y_train, idim.WIDTHS), theta)
    torch.testing.assert_close(gz, P.T @ gtheta)  # the chain rule through theta_0 + P z
