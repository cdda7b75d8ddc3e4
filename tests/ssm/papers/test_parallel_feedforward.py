"""Jacobi and Gauss-Seidel solutions of an RNN's forward pass against the sequential pass."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm.papers import parallel_feedforward as pf


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 999), T=st.integers(1, 12), k=st.integers(0, 12), norm=st.floats(0.1, 4.0))
def test_after_k_jacobi_sweeps_the_first_k_positions_are_exact(seed, T, k, norm):
    u, W, U, b = pf.contracting_rnn(seed, hidden=5, inputs=3, norm=norm)
    u = u[:, :T]
    exact = pf.sequential(u, W, U, b)
    x, _ = pf.jacobi(u, W, U, b, sweeps=k)
    torch.testing.assert_close(x[:, :k], exact[:, :k], rtol=0, atol=1e-12)
    x, done = pf.jacobi(u, W, U, b)  # whatever W, never more than T sweeps (+1 to confirm)
    assert done <= T + 1
    torch.testing.assert_close(x, exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("block", [1, 3, 7, 40])
def test_block_gauss_seidel_matches_the_sequential_pass(block):
    u, W, U, b = pf.contracting_rnn(1, hidden=6, inputs=2, norm=2.0)
    u = u[:, :20]
    x, sweeps = pf.block_gauss_seidel(u, W, U, b, block=block)
    torch.testing.assert_close(x, pf.sequential(u, W, U, b), rtol=0, atol=1e-11)
    if block == 1:
        assert sweeps == 20  # one exact update per position: the sequential pass


def test_a_contracting_step_needs_few_sweeps_and_bad_input_raises():
    u, W, U, b = pf.contracting_rnn(0, norm=0.3)
    _, k = pf.jacobi(u, W, U, b)
    assert k < 40 < pf.T
    with pytest.raises(ValueError, match="block"):
        pf.block_gauss_seidel(u, W, U, b, block=0)
    with pytest.raises(ValueError, match="`u`"):
        pf.sequential(u[0], W, U, b)
