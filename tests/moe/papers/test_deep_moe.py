"""Eigen et al. 2013's deep mixture of experts: the gated mixture, the NMI, the glyph data."""
import pytest
import torch

from course import data, metrics
from course.moe.papers import deep_moe


def test_nmi_of_identical_and_renamed_labelings_is_one():
    a = torch.randint(4, (500,), generator=torch.Generator().manual_seed(0))
    assert metrics.normalized_mutual_information(a, a) == pytest.approx(1.0)
    assert metrics.normalized_mutual_information(a, (a + 1) % 4) == pytest.approx(1.0)
    b = torch.randint(4, (20000,), generator=torch.Generator().manual_seed(1))
    c = torch.randint(4, (20000,), generator=torch.Generator().manual_seed(2))
    assert metrics.normalized_mutual_information(b, c) < 0.01
    assert metrics.normalized_mutual_information(torch.zeros_like(a), a) == pytest.approx(0.0)


def test_glyph_factors_are_independent_and_drawn_where_they_say():
    images, what, where = data.glyph_images(8000, seed=3)
    counts = torch.bincount(what * 4 + where, minlength=16).float()
    assert (counts - 500).abs().max() < 100  # every (what, where) pair about equally likely
    assert metrics.normalized_mutual_information(what, where) < 0.01
    clean, what, where = data.glyph_images(16, noise=0.0, seed=4)
    for image, c, p in zip(clean, what, where):
        row, col = data.PLACES[p]
        assert torch.equal(image[row:row + 4, col:col + 4], data.GLYPHS[c])
        assert image.sum() == data.GLYPHS[c].sum()  # nothing drawn elsewhere


def test_gated_mixture_is_the_gate_weighted_sum_of_experts():
    torch.manual_seed(0)
    layer = deep_moe.GatedMixture(6, 5, num_experts=3)
    x = torch.randn(7, 6)
    z, gates = layer(x)
    experts = [torch.relu(x @ layer.w[e] + layer.b[e]) for e in range(3)]
    expected = sum(gates[:, e:e + 1] * experts[e] for e in range(3))
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(gates.sum(-1), torch.ones(7))
