"""Ray Chowdhury and Caragea 2023 (BT-Cell): ListOps-lite values, the merge, and the beam search
against greedy and exhaustive search written out by hand."""
import itertools
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm.papers import beam_tree_cell as bt

D = 6


def evaluate(tokens):
    """A stack evaluator of ListOps-lite, independent of the generator."""
    stack = []
    for t in tokens:
        if t == "]":
            args = []
            while not isinstance(stack[-1], str):
                args.append(stack.pop())
            op = stack.pop()
            stack.append({"[MIN": min(args), "[MAX": max(args), "[SM": sum(args) % 10}[op])
        else:
            stack.append(t if t.startswith("[") else int(t))
    return stack[0]


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(0, 4), seed=st.integers(0, 999))
def test_expressions_have_their_value_and_depth(depth, seed):
    tokens, value = bt.expression(depth, random.Random(seed))
    assert evaluate(tokens) == value
    nesting = max(itertools.accumulate((t.startswith("[")) - (t == "]") for t in tokens))
    assert nesting == depth


def modules(seed=0):
    torch.manual_seed(seed)
    return bt.Cell(D).double(), torch.nn.Linear(D, 1).double()


def greedy_by_hand(leaves, cell, scorer):
    nodes = list(leaves)
    while len(nodes) > 1:
        parents = [cell(a, b) for a, b in zip(nodes, nodes[1:])]
        i = int(torch.stack([scorer(p) for p in parents]).argmax())
        nodes[i:i + 2] = [parents[i]]
    return nodes[0]


def best_by_exhaustion(leaves, cell, scorer):
    """The best total log-probability of the merges over every merge order."""
    if len(leaves) == 1:
        return 0.0
    parents = [cell(a, b) for a, b in zip(leaves, leaves[1:])]
    logp = torch.log_softmax(torch.stack([scorer(p)[0] for p in parents]), 0)
    return max(float(logp[i]) + best_by_exhaustion(leaves[:i] + [parents[i]] + leaves[i + 2:], cell, scorer)
               for i in range(len(parents)))


def test_merge_at_replaces_the_pair_by_its_parent():
    nodes = torch.arange(5.0).view(1, 1, 5, 1)
    merged = bt.merge_at(nodes, torch.full((1, 1, 1), 9.0), torch.tensor([[2]]))
    assert merged.view(-1).tolist() == [0, 1, 9, 4]


def test_beam_one_is_greedy_easy_first():
    cell, scorer = modules()
    leaves = torch.randn(1, 6, D, dtype=torch.float64)
    with torch.no_grad():
        root, _, merges = bt.beam_tree(leaves, torch.zeros(1, 6, dtype=torch.bool), 1, cell, scorer)
        torch.testing.assert_close(root[0], greedy_by_hand(list(leaves[0]), cell, scorer))
    assert merges.shape == (1, 1, 5)


def test_a_beam_as_wide_as_every_merge_order_finds_the_best_tree():
    cell, scorer = modules(1)
    leaves = torch.randn(1, 4, D, dtype=torch.float64)
    with torch.no_grad():
        _, scores, _ = bt.beam_tree(leaves, torch.zeros(1, 4, dtype=torch.bool), 6, cell, scorer)  # 3! orders
        best = best_by_exhaustion(list(leaves[0]), cell, scorer)
    assert abs(float(scores[0, 0]) - best) < 1e-9
    assert torch.equal(scores[0], scores[0].sort(descending=True).values)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 6), extra=st.integers(1, 4), k=st.integers(1, 4), seed=st.integers(0, 99))
def test_padding_changes_nothing(n, extra, k, seed):
    cell, scorer = modules(seed)
    leaves = torch.randn(1, n, D, dtype=torch.float64)
    padded = torch.cat([leaves, torch.randn(1, extra, D, dtype=torch.float64)], 1)
    pad = torch.arange(n + extra)[None] >= n
    with torch.no_grad():
        root = bt.beam_tree(leaves, torch.zeros(1, n, dtype=torch.bool), k, cell, scorer)[0]
        torch.testing.assert_close(bt.beam_tree(padded, pad, k, cell, scorer)[0], root)


def test_the_scorer_gets_gradients_and_the_classifiers_shapes():
    tokens, labels = bt.listops_lite(4, (2,), seed=0)
    for k in (1, 3):
        model = bt.BeamTreeClassifier(8, k)
        torch.nn.functional.cross_entropy(model(tokens), labels).backward()
        assert model.scorer[0].weight.grad.abs().sum() > 0
    assert bt.GRUClassifier(8)(tokens).shape == (4, 10)


def test_bad_input_names_the_argument():
    cell, scorer = modules()
    leaves = torch.randn(2, 3, D, dtype=torch.float64)
    with pytest.raises(ValueError, match="`pad` must be a bool tensor"):
        bt.beam_tree(leaves, torch.ones(2, 3, dtype=torch.bool), 2, cell, scorer)
    with pytest.raises(ValueError, match="`k`"):
        bt.beam_tree(leaves, torch.zeros(2, 3, dtype=torch.bool), 0, cell, scorer)
    with pytest.raises(ValueError, match="`n`"):
        bt.listops_lite(0)
