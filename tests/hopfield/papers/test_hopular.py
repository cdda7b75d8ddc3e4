"""Hopular's pieces: its lookup is the modern Hopfield update, a row's own entry is masked out of its
lookup during training (as the official code's memory_mask does), the stored training set is a set
(its order does not matter), the two models are matched in size, and bad input is refused by name."""
import pytest
import torch

from course.hopfield import modern
from course.hopfield.papers import hopular as H
from course.metrics import parameter_count
from course.train import seeded


def model_and_table(n=24, seed=0):
    with seeded(seed):
        model = H.Hopular()
    x, y = H.regimes_table(n, seed)
    return model, x, y


def test_the_lookup_is_the_modern_hopfield_update_and_a_mask_removes_a_pattern():
    g = torch.Generator().manual_seed(0)
    q, X = torch.randn(5, 6, dtype=torch.float64, generator=g), torch.randn(9, 6, dtype=torch.float64,
                                                                           generator=g)
    torch.testing.assert_close(H.hopfield_lookup(q, X, X, 1.7), modern.retrieve(q, X, 1.7))
    mask = torch.zeros(5, 9, dtype=torch.bool)
    mask[:, 4] = True
    kept = torch.cat([X[:4], X[5:]])
    torch.testing.assert_close(H.hopfield_lookup(q, X, X, 1.7, mask), modern.retrieve(q, kept, 1.7))


def test_a_training_row_cannot_read_its_own_target():
    model, x, y = model_and_table()
    rows = torch.arange(len(y))
    changed = y.clone()
    changed[3] += 10.0
    with torch.no_grad():
        masked = model(x, x, y, own_rows=rows)
        masked_changed = model(x, x, changed, own_rows=rows)
        open_ = model(x[3:4], x, y)
        open_changed = model(x[3:4], x, changed)
    assert masked[3] == masked_changed[3]  # row 3's prediction ignores its own stored target
    assert (masked[torch.arange(len(y)) != 3] != masked_changed[torch.arange(len(y)) != 3]).any()
    assert open_ != open_changed  # without the mask (test time) the stored target is read


def test_the_stored_training_set_is_a_set():
    model, x, y = model_and_table(seed=1)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    queries, _ = H.regimes_table(7, 1, split=1)
    with torch.no_grad():
        torch.testing.assert_close(model(queries, x, y), model(queries, x[order], y[order]))
        # the own-row mask follows the rows, wherever they are stored
        inverse = torch.argsort(order)
        torch.testing.assert_close(model(x, x, y, own_rows=torch.arange(len(y))),
                                   model(x, x[order], y[order], own_rows=inverse))


def test_the_embedding_masks_only_the_target():
    model, x, y = model_and_table()
    with torch.no_grad():
        unknown, known = model.embedding(x), model.embedding(x, y)
    assert unknown.shape == known.shape == (len(y), H.FEATURES + 1, H.EMBED)
    assert torch.equal(unknown[:, :-1], known[:, :-1]) and not torch.equal(unknown[:, -1], known[:, -1])


def test_the_models_are_matched_in_size_and_the_splits_differ():
    hopular, mlp = parameter_count(H.Hopular()), parameter_count(H.mlp())
    assert abs(hopular - mlp) / hopular < 0.02
    train, test = H.regimes_table(50, 0), H.regimes_table(50, 0, split=1)
    assert not torch.equal(train[0], test[0])
    assert torch.equal(train[0], H.regimes_table(50, 0)[0])  # reproducible


def test_bad_input_is_refused_by_name():
    model, x, y = model_and_table()
    with pytest.raises(ValueError, match="`x`"):
        model(x[:, :5], x, y)
    with pytest.raises(ValueError, match="memory_y"):
        model(x, x, y[:-1])
    with pytest.raises(ValueError, match="memory_x"):
        model(x, x[:, :5], y)
    with pytest.raises(TypeError, match="`x`"):
        model(x.long(), x, y)
    with pytest.raises(ValueError, match="n"):
        H.regimes_table(0, 0)
