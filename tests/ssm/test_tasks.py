"""The family's generated tasks: seeded, well formed, their answers where the task says."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm import tasks


def draws():
    return [tasks.selective_copying(64, T=24, tokens=6, copies=3, seed=0),
            tasks.associative_recall(64, pairs=5, seed=0, gap=3),
            tasks.long_range(64, T=20, seed=0, distance=7)]


def test_tasks_are_seeded_and_well_formed():
    for make in (lambda s: tasks.selective_copying(32, seed=s),
                 lambda s: tasks.associative_recall(32, seed=s), lambda s: tasks.long_range(32, seed=s)):
        a, b, c = make(0), make(0), make(1)
        assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)
    for d in draws():
        assert d.inputs.dtype == d.targets.dtype == torch.long and d.mask.dtype == torch.bool
        assert d.inputs.shape == d.targets.shape == d.mask.shape
        assert d.inputs.min() >= 0 and d.inputs.max() < d.vocab and d.targets.max() < d.vocab


@settings(max_examples=20, deadline=None)
@given(T=st.integers(8, 40), copies=st.integers(1, 4), seed=st.integers(0, 99))
def test_selective_copying_outputs_the_data_tokens_in_order(T, copies, seed):
    d = tasks.selective_copying(16, T=T, tokens=5, copies=copies, seed=seed)
    body = d.inputs[:, :T - copies]
    data = body[body >= 2].view(16, copies)  # the data tokens, in the order they appear
    assert torch.equal(d.targets[:, T - copies:], data) and (d.inputs[:, T - copies:] == tasks.GO).all()
    assert d.mask.sum(1).eq(copies).all() and d.mask[:, T - copies:].all()


@settings(max_examples=20, deadline=None)
@given(pairs=st.integers(1, 8), gap=st.integers(0, 5), seed=st.integers(0, 99))
def test_associative_recall_answers_the_queried_keys_value(pairs, gap, seed):
    d = tasks.associative_recall(16, pairs=pairs, seed=seed, gap=gap)
    keys, values, query = d.inputs[:, 0:2 * pairs:2], d.inputs[:, 1:2 * pairs:2], d.inputs[:, -1]
    assert all(k.unique().numel() == pairs for k in keys)  # keys distinct within a sequence
    hit = keys == query[:, None]
    assert hit.sum(1).eq(1).all() and torch.equal(d.targets[:, -1], values[hit])
    assert d.length == 2 * pairs + gap + 1 and d.mask.sum() == 16


def test_long_range_puts_the_class_token_distance_back():
    d = tasks.long_range(50, T=30, seed=3, distance=11, classes=3)
    assert torch.equal(d.inputs[:, 30 - 1 - 11], d.targets[:, -1])
    others = torch.cat([d.inputs[:, :18], d.inputs[:, 19:-1]], 1)
    assert (others >= 3).all() and d.targets[:, -1].unique().numel() == 3


def test_bad_arguments_raise_named_errors():
    with pytest.raises(ValueError, match="pairs"):
        tasks.associative_recall(4, pairs=9, keys=8)
    with pytest.raises(ValueError, match="distance"):
        tasks.long_range(4, T=10, distance=10)
    with pytest.raises(TypeError, match="T"):
        tasks.selective_copying(4, T=3.0)


class CountingModel(torch.nn.Module):
    """Token counts so far, then a linear read-out: solves long_range, cannot do better than chance on
    which of the early tokens came first."""

    def __init__(self, vocab):
        super().__init__()
        self.read = torch.nn.Linear(vocab, vocab)
        self.vocab = vocab

    def forward(self, tokens):
        return self.read(torch.nn.functional.one_hot(tokens, self.vocab).float().cumsum(1))


def test_train_sequence_model_learns_and_scores_a_held_out_draw():
    task = lambda n, s: tasks.long_range(n, T=12, seed=s, classes=3, noise=2)  # noqa: E731
    torch.manual_seed(0)
    accuracy = tasks.train_sequence_model(CountingModel(6), task, steps=60, lr=0.1, seed=0)
    assert accuracy > 0.9
