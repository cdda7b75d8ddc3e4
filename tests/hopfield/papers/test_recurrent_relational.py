"""Recurrent Relational Networks on 4x4 Sudoku: the generators, the constraint graph, messages that
follow its edges and nothing else, bad input."""
import itertools

import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield.papers import recurrent_relational as rrn


def assert_close(actual, expected, tol=1e-5):
    """allclose with a message (torch.testing.assert_close costs seconds of imports on first use)."""
    assert actual.shape == expected.shape and torch.allclose(actual, expected, rtol=tol, atol=tol), \
        f"largest difference {(actual - expected).abs().max().item():.3g}"


def valid_by_hand(grid):
    """Every row, column and 2x2 box of a 4x4 list of lists holds 0, 1, 2, 3."""
    units = [row for row in grid] + [list(col) for col in zip(*grid)]
    units += [[grid[r + a][c + b] for a in (0, 1) for b in (0, 1)] for r in (0, 2) for c in (0, 2)]
    return all(sorted(u) == [0, 1, 2, 3] for u in units)


def test_all_solutions_are_the_288_valid_grids():
    grids = rrn.all_solutions()
    assert grids.shape == (288, 16) and len({tuple(g) for g in grids.tolist()}) == 288
    assert all(valid_by_hand(g.reshape(4, 4).tolist()) for g in grids)
    assert not valid_by_hand([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])  # boxes repeat
    assert not rrn.is_solution(torch.tensor([[[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]])).any()


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2 ** 16))
def test_generated_solutions_satisfy_every_constraint_and_puzzles_are_unique(seed):
    g = torch.Generator().manual_seed(seed)
    assert all(valid_by_hand(grid) for grid in rrn.random_solutions(20, g).tolist())
    digits, solutions = rrn.puzzles(8, seed)
    given = digits != rrn.BLANK
    assert torch.equal(digits[given], solutions[given])
    assert all(valid_by_hand(s.reshape(4, 4).tolist()) for s in solutions)
    # unique, counted by brute force over the 288 grids, and minimal: no given can be removed
    every = rrn.all_solutions()
    for d, s, m in zip(digits, solutions, given):
        assert int(((every == s) | ~m).all(1).sum()) == 1
        for cell in m.nonzero().flatten().tolist():
            fewer = m.clone()
            fewer[cell] = False
            assert int(((every == s) | ~fewer).all(1).sum()) > 1


def test_the_constraint_graph_links_exactly_the_cells_that_share_a_unit():
    graph = rrn.constraint_graph()
    edges = set(map(tuple, graph.edge_index.T.tolist()))
    expected = {(a, b) for a, b in itertools.permutations(range(16), 2)
                if a // 4 == b // 4 or a % 4 == b % 4 or (a // 8, a % 4 // 2) == (b // 8, b % 4 // 2)}
    assert edges == expected and graph.num_edges == 16 * 7
    assert (graph.in_degree() == 7).all()


def test_messages_follow_the_constraint_graph_only():
    torch.manual_seed(0)
    layer = rrn.SudokuMessages(5)
    graph = rrn.batched_graph(2)
    h = torch.randn(32, 5)
    m = layer(graph, h)
    # the definition, edge by edge: m_j = sum over neighbours i of W2 relu(W1 [h_i; h_j] + b1) + b2
    expected = torch.zeros_like(m)
    for i, j in graph.edge_index.T.tolist():  # source i -> destination j
        r = torch.relu(layer.first(torch.cat([h[j], h[i]])))
        expected[j] += layer.second(r)
    assert_close(m, expected)
    # changing a cell moves its own messages and its neighbours' only, and never crosses puzzles
    h2 = h.clone()
    h2[0] += 1
    moved = (layer(graph, h2) - m).abs().sum(1) > 0
    neighbours = {j for i, j in graph.edge_index.T.tolist() if i == 0}
    assert set(moved.nonzero().flatten().tolist()) == neighbours | {0}


def test_the_model_reads_out_every_step_and_the_loss_covers_them():
    digits, solutions = rrn.puzzles(3, 0)
    model = rrn.RecurrentRelationalNetwork(8)
    logits = model(digits, steps=3)
    assert logits.shape == (3, 3, 16, 4)
    assert_close(model(digits, steps=2), logits[:2])
    loss = rrn.loss_every_step(logits, solutions)
    per_step = [torch.nn.functional.cross_entropy(o.reshape(-1, 4), solutions.reshape(-1)) for o in logits]
    assert_close(loss, sum(per_step))


def test_bad_input_is_refused():
    model = rrn.RecurrentRelationalNetwork(4)
    with pytest.raises(ValueError, match="`digits`"):
        model(torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="`digits`"):
        model(torch.full((2, 16), rrn.BLANK + 1))
    with pytest.raises(TypeError, match="`digits`"):
        model(torch.zeros(2, 16))
    with pytest.raises(ValueError, match="`steps`"):
        model(torch.zeros(2, 16, dtype=torch.long), steps=0)
    with pytest.raises(ValueError, match="`n`"):
        rrn.puzzles(0, 0)
    with pytest.raises(ValueError, match="`h`"):
        rrn.SudokuMessages(4)(rrn.constraint_graph(), torch.zeros(3, 4))
