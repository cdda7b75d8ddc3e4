"""Kosson et al. 2021: the pipeline's delays, Spike Compensation's impulse response, and the simulation
against plain momentum SGD where they must agree."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.landscape.models import flatten, mlp, mlp_loss, unflatten
from course.landscape.papers import pipelined_backprop as pb

WIDTHS = (2, 5, 4, 3)
ALL = pb.METHODS


def start(widths=WIDTHS, seed=0, steps=1):
    x, labels = pb.blob_stream(steps, seed)
    return flatten(mlp(widths, seed=seed)).double(), x[:, :widths[0]], labels % widths[-1]


def test_the_delays_are_two_hops_per_layer_still_to_go():
    assert pb.stage_delays(4) == [6, 4, 2, 0]
    assert pb.stage_delays(3, hop=3) == [12, 6, 0]


@settings(max_examples=15, deadline=None)
@given(delay=st.integers(0, 20), momentum=st.floats(0.0, 0.95), after=st.integers(0, 15))
def test_spike_compensation_makes_a_delayed_gradient_act_as_an_undelayed_one(delay, momentum, after):
    # One gradient g at step 0, nothing after: momentum SGD moves w by sum_k m^k g up to step k. With the
    # gradient arriving `delay` steps late, SC's spike and scaled tail give the same w from then on.
    g, lr = torch.tensor([1.0], dtype=torch.float64), 0.1
    w, v = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    for k in range(delay + after + 1):
        pb.momentum_update(w, v, g if k == 0 else 0 * g, lr, momentum)
    a, b = pb.spike_coefficients(delay, momentum)
    w_sc, v_sc = torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    for k in range(after + 1):
        pb.momentum_update(w_sc, v_sc, g if k == 0 else 0 * g, lr, momentum, a, b)
    torch.testing.assert_close(w_sc, w)


def test_sgd_is_momentum_sgd_with_autograd():
    theta, x, labels = start(steps=5)
    w = theta.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=pb.LR, momentum=pb.MOMENTUM)
    for n in range(5):
        opt.zero_grad()
        mlp_loss(w, x[n:n + 1], labels[n:n + 1], WIDTHS).backward()
        opt.step()
    torch.testing.assert_close(pb.sgd(theta, x, labels, WIDTHS)[0], w.detach())


@pytest.mark.parametrize("hop", [1, 2])
def test_one_sample_through_the_pipeline_is_one_sgd_step_or_its_compensated_spike(hop):
    theta, x, labels = start()
    sgd_theta, sgd_loss = pb.sgd(theta, x, labels, WIDTHS)
    final, losses = pb.pipelined_sgd(theta, x, labels, WIDTHS, ALL, hop=hop)
    torch.testing.assert_close(losses, sgd_loss.expand(len(ALL), -1))
    torch.testing.assert_close(final["pb"], sgd_theta)
    torch.testing.assert_close(final["pb_lwp"], sgd_theta)  # no velocity yet: nothing to predict
    # SC gives layer l the spike sum_{k <= D_l} m^k times the step.
    step = unflatten(sgd_theta - theta, WIDTHS)
    for (W, b), (W0, b0), (dW, db), D in zip(unflatten(final["pb_sc"], WIDTHS), unflatten(theta, WIDTHS),
                                             step, pb.stage_delays(3, hop)):
        spike = sum(pb.MOMENTUM ** k for k in range(D + 1))
        torch.testing.assert_close(W - W0, spike * dW)
        torch.testing.assert_close(b - b0, spike * db)


def test_a_single_layer_has_no_delay_and_every_method_is_sgd():
    widths = (2, 3)
    theta, x, labels = start(widths, steps=20)
    sgd_theta, sgd_losses = pb.sgd(theta, x, labels, widths)
    final, losses = pb.pipelined_sgd(theta, x, labels, widths, ALL)
    for name in ALL:
        torch.testing.assert_close(final[name], sgd_theta)
    torch.testing.assert_close(losses, sgd_losses.expand(len(ALL), -1))


def test_the_delay_changes_the_run_and_the_fixes_change_it_again():
    theta, x, labels = start(steps=20)
    final, _ = pb.pipelined_sgd(theta, x, labels, WIDTHS, ALL)
    sgd_theta, _ = pb.sgd(theta, x, labels, WIDTHS)
    thetas = [sgd_theta, *final.values()]
    assert all(float((a - b).abs().max()) > 1e-6 for i, a in enumerate(thetas) for b in thetas[i + 1:])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`momentum` must be in"):
        pb.spike_coefficients(3, 1.0)
    with pytest.raises(ValueError, match="`delay` must be an int in"):
        pb.spike_coefficients(-1, 0.9)
    with pytest.raises(ValueError, match="`hop` must be an int in"):
        pb.stage_delays(3, hop=0)
    theta, x, labels = start()
    with pytest.raises(ValueError, match="`x` must be a 2-D tensor"):
        pb.pipelined_sgd(theta, x[0], labels, WIDTHS, ALL)
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, C\)"):
        pb.sgd(theta, x, labels + 3, WIDTHS)
    with pytest.raises(ValueError, match="must match widths"):
        pb.pipelined_sgd(theta[:-1], x, labels, WIDTHS, ALL)
