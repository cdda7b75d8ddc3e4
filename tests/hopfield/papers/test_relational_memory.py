"""The Relational Memory Core: the N-th farthest task against a plain loop, the core's update, bad input."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield.papers import relational_memory as R
from course.metrics import parameter_count


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.integers(1, 5))
def test_the_target_is_the_nth_farthest_vector_from_m(seed, vectors, features):
    inputs, targets = R.nth_farthest(30, torch.Generator().manual_seed(seed), vectors, features)
    assert inputs.shape == (30, vectors, features + 3 * vectors) and targets.shape == (30,)
    for x, target in zip(inputs, targets):
        points, labels = x[:, :features], x[:, features:features + vectors].argmax(1)
        m, n = x[0, features + vectors:features + 2 * vectors], x[0, features + 2 * vectors:]
        assert sorted(labels.tolist()) == list(range(vectors)) and m.sum() == 1 and n.sum() == 1
        assert (x[:, features + vectors:] == x[0, features + vectors:]).all()  # m, n on every step
        reference = points[labels.tolist().index(int(m.argmax()))]
        distances = [(float(((p - reference) ** 2).sum()), int(label)) for p, label in zip(points, labels)]
        ranked = sorted(distances, reverse=True)
        assert int(target) == ranked[int(n.argmax())][1]


def core(seed=0):
    torch.manual_seed(seed)
    return R.RelationalMemory(5, slots=3, heads=2, head_size=4)


def test_the_memory_keeps_its_shape_and_every_attention_row_sums_to_one():
    rmc = core()
    memory = rmc.initial_memory(7)
    assert memory.shape == (7, 3, 8) and torch.equal(memory[0, :, :3], torch.eye(3))
    for _ in range(3):
        memory, weights = rmc.step(memory, torch.randn(7, 5))
        assert memory.shape == (7, 3, 8) and weights.shape == (7, 2, 3, 4)  # [B, H, S, S + 1]
        assert torch.allclose(weights.sum(-1), torch.ones(7, 2, 3)) and (weights >= 0).all()


def test_forward_is_the_step_repeated():
    rmc, inputs = core(), torch.randn(4, 6, 5)
    memory = rmc.initial_memory(4)
    for t in range(6):
        memory, _ = rmc.step(memory, inputs[:, t])
    assert torch.allclose(rmc(inputs), memory.flatten(1), atol=1e-6)


def test_a_closed_input_gate_and_open_forget_gate_keep_the_memory():
    rmc = core()
    with torch.no_grad():
        rmc.gate_input.bias[:8] = -1e4  # input gate i = 0
        rmc.gate_input.bias[8:] = 1e4  # forget gate f = 1
    memory = torch.randn(2, 3, 8)
    assert torch.allclose(rmc.step(memory, torch.randn(2, 5))[0], memory)


def test_attention_is_scaled_dot_product_attention():
    q, k, v = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 6, 5), torch.randn(2, 3, 6, 5)
    out, weights = R.multi_head_attention(q, k, v)
    assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 4))


def test_the_lstm_baseline_is_matched_in_size():
    rmc = R.rmc_classifier()
    hidden = R.matched_hidden(parameter_count(rmc))
    lstm = R.LSTMClassifier(R.INPUTS, hidden, R.VECTORS)
    assert abs(parameter_count(lstm) / parameter_count(rmc) - 1) < 0.05
    for h in (hidden - 1, hidden + 1):  # the count the formula matches is nn.LSTM's own
        assert abs(parameter_count(R.LSTMClassifier(R.INPUTS, h, R.VECTORS)) - parameter_count(rmc)) >= \
            abs(parameter_count(lstm) - parameter_count(rmc))
    assert rmc(R.nth_farthest(3, torch.Generator().manual_seed(0))[0]).shape == (3, R.VECTORS)


def test_bad_input_names_the_argument():
    rmc = core()
    with pytest.raises(ValueError, match="`memory`"):
        rmc.step(torch.zeros(2, 4, 8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="`x`"):
        rmc.step(torch.zeros(2, 3, 8), torch.zeros(2, 6))
    with pytest.raises(TypeError, match="`inputs`"):
        rmc(torch.zeros(2, 3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="`inputs`"):
        rmc(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="`heads`"):
        R.RelationalMemory(5, 2, 0, 4)
    with pytest.raises(ValueError, match="`n_sequences`"):
        R.nth_farthest(0, torch.Generator())
