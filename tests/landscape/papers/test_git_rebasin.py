"""Git Re-Basin's experiment on a pair with a known answer: a network and a permuted, nudged copy."""
import torch

from course.landscape import models, permutation
from course.landscape.papers import git_rebasin, pairs_toy


def test_the_experiment_finds_the_permutation_between_a_network_and_its_permuted_copy(monkeypatch):
    def permuted_pair(width, seed):
        widths = pairs_toy.widths_for(width)
        theta = models.flatten(models.mlp(widths, seed=seed))
        g = torch.Generator().manual_seed(seed)
        perms = [torch.randperm(h, generator=g) for h in widths[1:-1]]
        nudged = theta + 1e-3 * torch.randn(theta.shape, generator=g)
        return theta, permutation.permute(nudged, widths, perms)

    monkeypatch.setattr(pairs_toy, "trained_pair", permuted_pair)
    monkeypatch.setattr(git_rebasin, "WIDTHS", (4, 16))
    m = git_rebasin.rebasin_experiment(0)
    for w in (4, 16):
        assert m[f"after_{w}"] < 1e-3 and m[f"after_activation_{w}"] < 1e-3
        assert m[f"ratio_{w}"] == m[f"before_{w}"] / max(m[f"after_{w}"], 1e-6)
    assert m["ratio_widest"] == m["ratio_16"] and m["after_drop_with_width"] == m["after_4"] - m["after_16"]
    assert m["before_16"] > m["after_16"]  # the line to the unaligned copy rises
    assert "width 4" in git_rebasin.CLAIM.summary(m)

