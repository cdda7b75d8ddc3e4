"""Bushnaq et al. 2024: the degeneracy measures and the interaction basis on networks built to have them."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape.models import mlp_logits, parameter_count, unflatten
from course.landscape.papers import degeneracy as dg


def random_net(widths, seed, n=64):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(parameter_count(widths), generator=g, dtype=torch.float64)
    return theta, torch.randn(n, widths[0], generator=g, dtype=torch.float64)


def test_the_forward_pass_is_the_mlp_and_the_jacobian_is_autograd_s():
    widths = (3, 5, 4, 2)
    theta, x = random_net(widths, 0, n=6)
    features, gates, logits = dg.layer_activations(theta, x, widths)
    torch.testing.assert_close(logits, mlp_logits(theta, x, widths))
    (W1, b1), (W2, b2), (W3, b3) = unflatten(theta, widths)

    def after_first(f):  # the logits as a function of features[0] (constant included)
        return torch.relu(f @ torch.cat([W2, b2[:, None]], 1).T) @ W3.T + b3

    for n in range(len(x)):
        J = torch.autograd.functional.jacobian(after_first, features[0][n])
        torch.testing.assert_close(dg.output_jacobian(theta, widths, gates, 0)[n], J)
    torch.testing.assert_close(dg.output_jacobian(theta, widths, gates, 1),
                               torch.cat([W3, b3[:, None]], 1).expand(len(x), -1, -1))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 999))
def test_removing_the_degenerate_directions_of_the_last_layer_keeps_the_logits(seed):
    # The last hidden layer's Jacobian is [W, b] for every input: rank <= C, so the basis keeps at most
    # C directions and the logits do not move. (A tolerance at rounding level, so that only exact null
    # directions are dropped; the claim's RANK_TOL also drops tiny ones, and measures what that costs.)
    widths = (2, 6, 9, 3)
    theta, x = random_net(widths, seed)
    features, gates, logits = dg.layer_activations(theta, x, widths)
    A, B, _ = dg.interaction_basis(features[1], dg.output_jacobian(theta, widths, gates, 1), tol=1e-12)
    assert A.shape[1] <= 3
    torch.testing.assert_close(A @ B @ A @ B, A @ B)  # a projection
    ablated = dg.layer_activations(theta, x, widths, [None, A @ B])[2]
    torch.testing.assert_close(ablated, logits)


def test_a_duplicated_unit_is_an_activation_degeneracy_the_basis_removes():
    widths = (2, 4, 3)
    theta, x = random_net(widths, 1)
    (W1, b1), (W2, _) = unflatten(theta, widths)
    with torch.no_grad():
        W1[3], b1[3] = 2 * W1[2], 2 * b1[2]  # unit 3 = 2 x unit 2: same pattern, dependent activation
    features, gates, logits = dg.layer_activations(theta, x, widths)
    assert dg.numerical_rank(dg.gram(features[0])) == 4  # 4 units + constant, one dependent
    assert dg.cofiring(gates[0])["duplicate"] == 1
    A, B, _ = dg.interaction_basis(features[0], dg.output_jacobian(theta, widths, gates, 0), tol=1e-12)
    assert A.shape[1] <= 4
    torch.testing.assert_close(dg.layer_activations(theta, x, widths, [A @ B])[2], logits)


def test_cofiring_counts_dead_always_on_and_repeated_patterns():
    gates = torch.tensor([[0, 1, 1, 1, 0], [0, 1, 0, 0, 1], [0, 1, 1, 1, 1]], dtype=torch.float64)
    assert dg.cofiring(gates) == {"dead": 1, "always_on": 1, "duplicate": 1}


def test_numerical_rank_counts_eigenvalues_above_the_relative_tolerance():
    assert dg.numerical_rank(torch.diag(torch.tensor([1.0, 1e-3, 1e-9, 0.0], dtype=torch.float64))) == 2
    assert dg.numerical_rank(torch.zeros(3, 3)) == 0


def test_random_removal_drops_that_many_directions():
    P = dg.random_removal(7, 3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(P @ P, P)
    assert round(float(torch.trace(P))) == 4


def test_bad_input_names_the_argument():
    widths = (2, 4, 3)
    theta, x = random_net(widths, 0)
    with pytest.raises(ValueError, match="`x` must be a 2-D tensor"):
        dg.layer_activations(theta, x[0], widths)
    _, gates, _ = dg.layer_activations(theta, x, widths)
    with pytest.raises(ValueError, match="`layer` must be an int in"):
        dg.output_jacobian(theta, widths, gates, 1)
    with pytest.raises(ValueError, match="`matrix` must be a 2-D tensor"):
        dg.numerical_rank(torch.ones(3))
