"""Gonon et al. 2024: the path-norm by one forward pass equals the sum over paths and is invariant."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape.models import mlp_logits, parameter_count
from course.landscape.papers import path_norm as pn


def random_theta(widths, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(parameter_count(widths), generator=g, dtype=torch.float64)


@settings(max_examples=15, deadline=None)
@given(widths=st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple), seed=st.integers(0, 99),
       q=st.sampled_from([1.0, 2.0, 3.0]))
def test_one_forward_pass_equals_the_sum_over_every_path(widths, seed, q):
    theta = random_theta(widths, seed)
    phi = pn.path_lifting(theta, widths)
    torch.testing.assert_close(pn.path_norm(theta, widths, q), phi.abs().pow(q).sum() ** (1 / q),
                               rtol=1e-12, atol=0)


def test_the_lifting_counts_paths_from_inputs_and_from_every_bias():
    widths = (2, 3, 2)
    assert pn.path_lifting(random_theta(widths, 0), widths).numel() == 2 * 3 * 2 + 3 * 2 + 2


def test_the_output_is_linear_in_the_lifting_on_a_linear_region():
    # With every ReLU on (all parameters and inputs positive), R(x)_o = sum_p Phi_p x_p: for x = 1 the
    # outputs summed are the sum of Phi, for a one-hidden-layer network.
    widths = (2, 3, 1)
    theta = random_theta(widths, 1).abs()
    out = mlp_logits(theta, torch.ones(1, 2, dtype=torch.float64), widths)
    torch.testing.assert_close(out.sum(), pn.path_lifting(theta, widths).sum())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 999))
def test_rescaling_and_permuting_neurons_keep_the_function_and_the_path_norm(seed):
    widths = (3, 4, 5, 2)
    theta = random_theta(widths, seed)
    g = torch.Generator().manual_seed(seed)
    scales = [10 ** (4 * torch.rand(h, generator=g, dtype=torch.float64) - 2) for h in widths[1:-1]]
    perms = [torch.randperm(h, generator=g) for h in widths[1:-1]]
    moved = pn.permute_neurons(pn.rescale_neurons(theta, widths, scales), widths, perms)
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mlp_logits(moved, x, widths), mlp_logits(theta, x, widths))
    for q in (1.0, 2.0):
        torch.testing.assert_close(pn.path_norm(moved, widths, q), pn.path_norm(theta, widths, q))
    # Phi is permuted, not changed: the multiset of path values is the same.
    torch.testing.assert_close(pn.path_lifting(moved, widths).sort().values,
                               pn.path_lifting(theta, widths).sort().values)


def test_the_path_norm_bounds_the_output_on_the_unit_cube():
    widths = (4, 6, 6, 3)
    theta = random_theta(widths, 3)
    x = 2 * torch.rand(500, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    assert float(mlp_logits(theta, x, widths).abs().sum(1).max()) <= float(pn.path_norm(theta, widths))


def test_bad_input_names_the_argument():
    widths = (2, 3, 2)
    theta = random_theta(widths, 0)
    with pytest.raises(ValueError, match="`theta` must have P = 17"):
        pn.path_norm(theta[:-1], widths)
    with pytest.raises(ValueError, match="`q` must be >= 1"):
        pn.path_norm(theta, widths, q=0.5)
    with pytest.raises(ValueError, match=r"`scales\[0\]` must hold 3 positive"):
        pn.rescale_neurons(theta, widths, [torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"`perms\[0\]` must be a permutation"):
        pn.permute_neurons(theta, widths, [torch.tensor([0, 0, 1])])
    with pytest.raises(TypeError, match="`theta` must be a floating-point"):
        pn.path_lifting(torch.zeros(17, dtype=torch.int64), widths)
