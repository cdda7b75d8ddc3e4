"""Sieber et al. 2024: the "which model is which" table and the S6 / linear attention lemma."""
import torch

from course.ssm import framework as fw
from course.ssm.papers import dynamical_systems as ds


def test_the_table_has_a_row_per_model_with_agreeing_forms():
    rows = ds.model_table(seed=3, T=5)
    assert [r["model"] for r in rows] == list(fw.MODELS)
    assert max(r["forms_gap"] for r in rows) < 1e-10


def test_s6_with_identity_transition_is_linear_attention():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    W = [torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 3), (3,), (2, 3), (2, 3))]
    A = torch.full((3, 2), -1e-300, dtype=torch.float64)
    torch.testing.assert_close(fw.selective_ssm(x, A, *W, None), ds.s6_as_linear_attention(x, *W))
    # with a real decay they differ: S6 forgets, linear attention does not
    A = -torch.ones(3, 2, dtype=torch.float64)
    assert (fw.selective_ssm(x, A, *W, None) - ds.s6_as_linear_attention(x, *W)).abs().max() > 1e-3
