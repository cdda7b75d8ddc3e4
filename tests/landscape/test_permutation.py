"""Git Re-Basin's permutations: a permuted network is the same function; matching undoes a permutation."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape import models, permutation


def random_perms(widths, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(h, generator=g) for h in widths[1:-1]]


@settings(max_examples=15, deadline=None)
@given(hidden=st.lists(st.integers(1, 12), min_size=1, max_size=3), inputs=st.integers(1, 5),
       classes=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_a_permuted_network_computes_the_same_function(hidden, inputs, classes, seed):
    widths = (inputs, *hidden, classes)
    theta = models.flatten(models.mlp(widths, seed=seed)).double()
    perms = random_perms(widths, seed)
    moved = permutation.permute(theta, widths, perms)
    x = torch.randn(17, inputs, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(models.mlp_logits(moved, x, widths), models.mlp_logits(theta, x, widths),
                               rtol=0, atol=1e-12)
    assert torch.equal(permutation.permute(moved, widths, permutation.inverse(perms)), theta)
    assert torch.equal(permutation.permute(theta, widths, permutation.identity_perms(widths)), theta)
    assert sorted(moved.tolist()) == sorted(theta.tolist())  # the same numbers, moved


def test_weight_and_activation_matching_recover_a_known_permutation_exactly():
    widths = (5, 16, 12, 8, 3)
    theta_a = models.flatten(models.mlp(widths, seed=0)).double()
    theta_b = permutation.permute(theta_a, widths, random_perms(widths, 1))
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    found = permutation.weight_matching(theta_a, theta_b, widths, seed=3)
    assert torch.equal(permutation.permute(theta_b, widths, found), theta_a)
    found = permutation.activation_matching(theta_a, theta_b, widths, x)
    assert torch.equal(permutation.permute(theta_b, widths, found), theta_a)


def test_weight_matching_never_lowers_the_correlation_of_the_weights():
    widths = (3, 10, 10, 2)
    theta_a, theta_b = (models.flatten(models.mlp(widths, seed=s)).double() for s in (0, 1))
    aligned = permutation.permute(theta_b, widths, permutation.weight_matching(theta_a, theta_b, widths))
    assert float(theta_a @ aligned) >= float(theta_a @ theta_b)
    assert float((theta_a - aligned).norm()) <= float((theta_a - theta_b).norm())


def test_the_line_to_an_aligned_copy_has_no_barrier():
    widths = (2, 8, 3)
    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(40, 2, generator=g, dtype=torch.float64), torch.randint(3, (40,), generator=g)
    theta_a = models.flatten(models.mlp(widths, seed=0)).double()
    perms = random_perms(widths, 4)
    theta_b = permutation.permute(theta_a, widths, perms)
    out = permutation.barriers_before_after(x, labels, theta_a, theta_b, widths, permutation.inverse(perms),
                                            points=9)
    assert out["losses_before"].shape == (9,) and out["ts"][0] == 0 and out["ts"][-1] == 1
    torch.testing.assert_close(out["losses_after"], out["losses_after"][:1].expand(9))
    assert abs(out["after"]) < 1e-12 and out["before"] >= out["after"]


def test_bad_input_is_refused_with_the_argument_named():
    widths = (2, 6, 3)
    theta = models.flatten(models.mlp(widths, seed=0))
    other = models.flatten(models.mlp((2, 7, 3), seed=0))
    with pytest.raises(ValueError, match="`theta_b` must be a network of widths"):
        permutation.weight_matching(theta, other, widths)
    with pytest.raises(ValueError, match="`theta_b` must be a network of widths"):
        permutation.activation_matching(theta, other, widths, torch.randn(4, 2))
    with pytest.raises(ValueError, match="`x` must be"):
        permutation.activation_matching(theta, theta, widths, torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"`perms\[0\]` must be a permutation of 0..5"):
        permutation.permute(theta, widths, [torch.tensor([0, 0, 1, 2, 3, 4])])
    with pytest.raises(ValueError, match="`perms` must be a list of 1 permutations"):
        permutation.permute(theta, widths, [])
    with pytest.raises(ValueError, match="`theta` must be a network of widths"):
        permutation.permute(other, widths, permutation.identity_perms(widths))
    with pytest.raises(TypeError, match=r"`perms\[0\]` must be an integer tensor"):
        permutation.permute(theta, widths, [torch.arange(6.0)])
    with pytest.raises(TypeError, match="`iterations` must be an int"):
        permutation.weight_matching(theta, theta, widths, iterations=1.5)
