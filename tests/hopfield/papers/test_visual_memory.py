"""The visual memory's invariants: inserting then deleting gives the memory back, a deleted entry's
influence is gone (the same votes as a memory built without it, in any order), inserting entries that no
query ranks among its k nearest changes nothing, the votes weigh neighbours as the paper's rules say, and
bad input is refused by name."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield.papers import visual_memory as V


def random_memory(m, e, classes, seed):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(m, e, generator=g)
    return V.insert(V.empty_memory(e), keys, torch.randint(classes, (m,), generator=g), torch.arange(m)), g


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 40), added=st.integers(1, 10), k=st.integers(1, 12), seed=st.integers(0, 999))
def test_insert_then_delete_gives_the_memory_and_its_votes_back(m, added, k, seed):
    memory, g = random_memory(m, 6, 3, seed)
    queries = torch.randn(5, 6, generator=g)
    extra = V.insert(memory, torch.randn(added, 6, generator=g), torch.randint(3, (added,), generator=g),
                     1000 + torch.arange(added))
    back = V.delete(extra, 1000 + torch.arange(added))
    for a, b in zip(back, memory):
        assert torch.equal(a, b)
    assert torch.equal(V.classify(back, queries, k, 3), V.classify(memory, queries, k, 3))


@settings(max_examples=15, deadline=None)
@given(m=st.integers(2, 40), k=st.integers(1, 12), voting=st.sampled_from(["rank", "softmax"]),
       seed=st.integers(0, 999))
def test_a_deleted_entry_leaves_no_trace(m, k, voting, seed):
    g = torch.Generator().manual_seed(seed)
    raw, labels = torch.randn(m, 6, generator=g), torch.randint(3, (m,), generator=g)
    memory = V.insert(V.empty_memory(6), raw, labels, torch.arange(m))
    queries = torch.randn(5, 6, generator=g)
    gone = torch.randperm(m, generator=g)[:m // 2]
    pruned = V.delete(memory, gone)
    keep = ~torch.isin(torch.arange(m), gone)
    rebuilt = V.insert(V.empty_memory(6), raw[keep], labels[keep], torch.arange(m)[keep])
    assert not torch.isin(gone, pruned.ids).any()
    assert torch.equal(V.classify(pruned, queries, k, 3, voting), V.classify(rebuilt, queries, k, 3, voting))
    # built in another order, the memory is the same set: the same neighbours, votes equal to rounding
    order = torch.randperm(int(keep.sum()), generator=g)
    ids = torch.arange(m)[keep]
    shuffled = V.insert(V.empty_memory(6), raw[keep][order], labels[keep][order], ids[order])
    torch.testing.assert_close(V.classify(shuffled, queries, k, 3, voting),
                               V.classify(pruned, queries, k, 3, voting))


def test_entries_outside_every_queries_k_nearest_change_nothing():
    memory, g = random_memory(30, 6, 3, 0)
    queries = torch.randn(20, 6, generator=g)
    extra = V.insert(memory, torch.randn(3, 6, generator=g), torch.full((3,), 2), 100 + torch.arange(3))
    _, idx = V.neighbours(extra, queries, 5)
    untouched = ~(extra.ids[idx] >= 100).any(1)  # queries that rank no new entry among their 5 nearest
    assert 0 < untouched.sum() < len(queries)
    after, before = V.classify(extra, queries, 5, 3), V.classify(memory, queries, 5, 3)
    assert torch.equal(after[untouched], before[untouched])
    assert not torch.equal(after[~untouched], before[~untouched])


def test_the_votes_follow_the_rank_and_softmax_rules():
    labels = torch.tensor([[2, 0, 2, 1]])
    expected = torch.tensor([[1 / 4, 1 / 6, 1 / 3 + 1 / 5]])  # 1 / (alpha + r) with alpha = 2
    torch.testing.assert_close(V.rank_vote(labels, 3, alpha=2.0), expected)
    sims = torch.tensor([[0.9, 0.5, 0.4, 0.1]])
    scores = V.softmax_vote(sims, labels, 3, temperature=0.1)
    w = (sims / 0.1).softmax(1)[0]
    torch.testing.assert_close(scores, torch.stack([w[1], w[3], w[0] + w[2]])[None])
    # a query equal to a stored key has it as its nearest neighbour
    memory, _ = random_memory(20, 5, 4, 1)
    sims, idx = V.neighbours(memory, memory.keys[7:8] * 3.0, 3)
    assert idx[0, 0] == 7 and torch.isclose(sims[0, 0], torch.tensor(1.0))
    assert V.classify(memory, memory.keys[7:8], 1, 4).argmax() == memory.labels[7]
    assert V.neighbours(memory, memory.keys[:2], 50)[1].shape == (2, 20)  # k > M: every entry


def test_the_experiments_pieces():
    images, glyph = V.glyphs(30, 0, [1, 3])
    assert images.shape == (30, 8, 8) and set(glyph.tolist()) <= {1, 3}
    features = V.random_features(0)(images)
    assert features.shape == (30, V.EMBED) and (features >= 0).all()
    assert torch.equal(features, V.random_features(0)(images))  # fixed: no training


def test_bad_input_is_refused_by_name():
    memory, _ = random_memory(5, 4, 2, 0)
    with pytest.raises(ValueError, match="keys"):
        V.insert(memory, torch.randn(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([7, 8]))
    with pytest.raises(ValueError, match="ids"):
        V.insert(memory, torch.randn(2, 4), torch.zeros(2, dtype=torch.long), torch.tensor([1, 9]))
    with pytest.raises(ValueError, match="labels"):
        V.insert(memory, torch.randn(2, 4), torch.tensor([0, -1]), torch.tensor([7, 8]))
    with pytest.raises(TypeError, match="labels"):
        V.insert(memory, torch.randn(2, 4), torch.zeros(2), torch.tensor([7, 8]))
    with pytest.raises(ValueError, match="ids"):
        V.delete(memory, torch.tensor([2, 99]))
    with pytest.raises(ValueError, match="at least one entry"):
        V.classify(V.empty_memory(4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="queries"):
        V.classify(memory, torch.randn(1, 3))
    with pytest.raises(ValueError, match="k"):
        V.neighbours(memory, torch.randn(1, 4), 0)
    with pytest.raises(ValueError, match="voting"):
        V.classify(memory, torch.randn(1, 4), voting="plurality")
