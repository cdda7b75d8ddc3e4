"""The claim records themselves: complete, run by their notebook, and the thresholds' mechanics.

The claims' other seeds run in each family's tests/<family>/test_claims.py (see claim_checks.py).
"""
import inspect

import pytest

from course import claims, families
from course.notebooks import course_root

CLAIMS = claims.all_claims()


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_record_is_complete(claim):
    assert claim.paper and claim.citation and claim.statement
    assert claim.thresholds, "a claim without thresholds cannot fail"
    assert list(inspect.signature(claim.experiment).parameters)[0] == "seed"
    if claim.kind == claims.REPRODUCTION:
        assert len(claim.seeds) >= 3
    if not claim.reproduced:
        assert claim.note, "a claim that does not hold on every seed says why in its note"


@pytest.mark.parametrize("family", families.discovered(), ids=lambda f: f.package)
def test_every_family_checks_its_claims_on_their_other_seeds(family):
    path = course_root() / "tests" / family.package / "test_claims.py"
    assert path.exists() and f'claim_tests("{family.package}")' in path.read_text(), path


@pytest.mark.parametrize("family", families.discovered(), ids=lambda f: f.package)
def test_the_notebook_runs_every_claim_of_its_family(family):
    from course import catalog

    import nbformat

    notebook = course_root() / "notebooks" / catalog.family(family.id).notebook_name
    source = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells
                       if c.cell_type == "code")
    for claim in claims.of_family(family.package):
        assert f'claims.run("{claim.id}")' in source, f"{notebook.name} does not run {claim.id}"
    assert f'claims.summary("{family.package}")' in source


def test_thresholds_parse_and_decide():
    t = claims.Threshold.parse("cv_ratio >= 5")
    assert (t.name, t.op, t.bound) == ("cv_ratio", ">=", 5.0)
    assert t.holds({"cv_ratio": 5.0}) and not t.holds({"cv_ratio": 4.99})
    assert claims.Threshold.parse("gap <= 1e-5").holds({"gap": 0.0})
    with pytest.raises(ValueError, match="name op number"):
        claims.Threshold.parse("cv_ratio is large")
    with pytest.raises(KeyError, match="measured no 'missing'"):
        claims.Threshold.parse("missing > 0").holds({"cv_ratio": 1.0})


def test_a_reproduction_needs_three_seeds_and_held_on_among_them():
    common = dict(paper="p", citation="c", statement="s", experiment=lambda seed: {"x": 1.0},
                  thresholds=("x > 0",), summary=lambda m: "")
    with pytest.raises(ValueError, match="at least 3 seeds"):
        claims.Claim(kind=claims.REPRODUCTION, seeds=(0, 1), **common)
    with pytest.raises(ValueError, match="held_on"):
        claims.Claim(kind=claims.DEMONSTRATION, held_on=(1,), **common)
    assert claims.Claim(kind=claims.DEMONSTRATION, **common).seeds == (0,)
    with pytest.raises(ValueError, match="kind"):
        claims.Claim(kind="anecdote", **common)
    claim = claims.Claim(kind=claims.REPRODUCTION, held_on=(0, 2), **common)
    assert not claim.reproduced and claim.verdict == "NOT reproduced" and claim.seeds_held() == "2 of 3"
