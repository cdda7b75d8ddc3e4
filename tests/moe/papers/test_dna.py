"""The toy distributed neural architecture (DNA): routing, the routed attention, the path
statistics (the claim itself is checked on its seeds by tests/test_claims.py)."""
import pytest
import torch

from course.moe.losses import switch_balance_loss
from course.moe.papers import dna


def test_sequence_task_targets_and_zipf_frequencies():
    tokens, targets = dna.sequence_task(64, 12, torch.Generator().manual_seed(0))
    copy = tokens % 2 == 0
    previous = torch.cat([tokens[:, :1], tokens[:, :-1]], dim=1)
    assert torch.equal(targets[copy], previous[copy])
    assert torch.equal(targets[~copy], ((3 * tokens + 5) % dna.NUM_SYMBOLS)[~copy])
    counts = torch.bincount(tokens.flatten(), minlength=dna.NUM_SYMBOLS)
    assert counts[0] > 3 * counts[-4:].float().mean()  # Zipf: symbol 0 is the most frequent


def test_forward_shapes_paths_and_balance():
    model = dna.DNA(d=16, steps=3, length=8)
    logits, paths, balance = model(torch.randint(dna.NUM_SYMBOLS, (4, 8)))
    assert logits.shape == (4, 8, dna.NUM_SYMBOLS) and paths.shape == (4, 8, 3)
    assert paths.min() >= 0 and paths.max() < len(model.pool_names)
    assert balance.item() >= 0 and balance.requires_grad


def test_switch_balance_is_one_when_uniform_and_grows_with_imbalance():
    probs = torch.full((2, 6, 3), 1 / 3)
    choice = torch.arange(3).repeat(4).view(2, 6, 1)
    assert switch_balance_loss(probs, choice).item() == pytest.approx(1.0)
    collapsed = torch.tensor([0.9, 0.05, 0.05]).expand(2, 6, 3)
    assert switch_balance_loss(collapsed, torch.zeros(2, 6, 1, dtype=torch.long)).item() == \
        pytest.approx(3 * 0.9)


def test_routed_attention_sees_only_tokens_routed_to_it():
    torch.manual_seed(0)
    attention = dna.RoutedAttention(8)
    h = torch.randn(1, 6, 8)
    member = torch.tensor([[True, False, True, False, True, True]])
    before = attention(h, member)
    h_changed = h.clone()
    h_changed[0, 1] += 5.0  # a token routed elsewhere
    after = attention(h_changed, member)
    assert torch.allclose(before[member], after[member], atol=1e-6)
    assert torch.isfinite(before).all()


def test_path_ids_and_frequencies():
    paths = torch.tensor([[[0, 1], [0, 1], [2, 0], [0, 1]]])  # [B=1, L=4, S=2], M=3
    assert dna.path_ids(paths, 3).tolist() == [3, 3, 2, 3]
    assert dna.path_frequencies(paths, 3).tolist() == [3, 1]


def test_log_log_fit_tells_a_power_law_from_an_exponential():
    rank = torch.arange(1, 41, dtype=torch.float64)
    power = dna.log_log_fit((1e5 * rank ** -1.5).round().long())
    assert power["slope"] == pytest.approx(-1.5, abs=0.02) and power["r2_power"] > 0.999
    assert power["r2_power"] > power["r2_exponential"]
    exponential = dna.log_log_fit((1e5 * torch.exp(-0.2 * rank)).round().long())
    assert exponential["r2_exponential"] > exponential["r2_power"]


def test_top_fraction_coverage():
    counts = torch.tensor([50, 20, 10, 5, 5, 4, 3, 1, 1, 1, 1])  # 11 paths: the top 2 are 10%+
    assert dna.top_fraction_coverage(counts) == pytest.approx(70 / 101)


def test_pool_names_are_checked():
    with pytest.raises(ValueError, match="pool"):
        dna.DNA(pool=("attention", "conv"))
    with pytest.raises(ValueError, match="tokens"):
        dna.DNA(length=4)(torch.zeros(2, 5, dtype=torch.long))


def test_training_learns_the_task():
    model, training = dna.train_dna(steps=60, seed=3)
    assert training.steps == 60
    first, last = sum(training.losses[:5]) / 5, sum(training.losses[-5:]) / 5
    assert last < first - 0.3, (first, last)
    assert dna.measure_paths(model, batch=32)["accuracy"] > 1 / dna.NUM_SYMBOLS + 0.1
