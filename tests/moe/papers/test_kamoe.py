"""KAMoE's pieces: the B-spline basis, the gates, the regime-switching series, the matched GRN."""
import torch

from course.metrics import parameter_count
from course.moe.papers import kamoe
from course.neurons.layers import KANLayer


def test_the_gate_uses_the_course_s_one_kan_layer():
    """The B-spline KAN layer is the neuron-models family's (its basis is tested in tests/neurons)."""
    gate = kamoe.GRKANGate(6, 4)
    assert isinstance(gate.layer_1, KANLayer) and isinstance(gate.layer_2, KANLayer)
    assert not isinstance(kamoe.GRKANGate(6, 4, kan=False).layer_1, KANLayer)


def test_gates_are_distributions_over_experts():
    x = torch.randn(10, 6)
    for gate in (kamoe.GRKANGate(6, 4), kamoe.GRKANGate(6, 4, kan=False), kamoe.LinearGate(6, 4)):
        g = gate(x)
        assert g.shape == (10, 4) and torch.allclose(g.sum(1), torch.ones(10)) and (g > 0).all()


def test_regime_switching_series_follows_its_rule():
    x, regime, noise = kamoe.regime_switching_series(length=400)
    X, y = kamoe.lagged_windows(x, 6)
    assert X.shape == (394, 6) and torch.equal(X[1], x[1:7]) and y[0] == x[6]
    assert set(regime.tolist()) == {0, 1} and 0 < noise < 1


def test_the_grn_baseline_is_matched_in_size_and_the_gates_are_seeded_apart():
    gates = kamoe.make_gates(window=6, num_experts=4, seed=0)
    grkan, grn = parameter_count(gates["grkan"]), parameter_count(gates["grn"])
    assert abs(grn - grkan) <= 0.05 * grkan, (grn, grkan)
    again = kamoe.make_gates(window=6, num_experts=4, seed=0)
    for name in gates:  # each gate's initialisation depends on the seed alone
        for a, b in zip(gates[name].parameters(), again[name].parameters()):
            assert torch.equal(a, b), name
