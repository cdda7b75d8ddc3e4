"""The claim tests, generated from the records: every claim on every seed the notebook does not run.

A notebook runs each claim on its first seed (its outputs are compared by nbval); the family's
tests/<family>/test_claims.py runs the other seeds with `claim_tests`, and every threshold of the
record is checked against the numbers: a claim the course reports as holding on a seed must meet
each threshold there, and one it reports as failing must miss at least one. So a lucky seed cannot
carry a claim, and a claim that stops (or starts) reproducing fails until its record says so.
"""
import pytest

from course import claims


def claim_tests(package: str):
    """The test of a family's claims on their other seeds, parametrized over (claim, seed)."""
    params = [pytest.param(c, seed, id=f"{c.id}-seed{seed}")
              for c in claims.of_family(package) for seed in c.seeds[1:]]

    @pytest.mark.parametrize("claim,seed", params)
    def test_claim_on_its_other_seeds(claim, seed):
        result = claims.run(claim, seed)
        verdicts = [f"{t.describe(result.measured)}: {'met' if t.holds(result.measured) else 'MISSED'}"
                    for t in claim.thresholds]
        if seed in claim.held_on:
            assert not result.failed, (f"{claim.id} is reported to hold on seed {seed}, but:\n  "
                                       + "\n  ".join(verdicts))
        else:
            assert result.failed, (f"{claim.id} is reported not to hold on seed {seed}, yet every "
                                   "threshold is met; update its record (held_on):\n  "
                                   + "\n  ".join(verdicts))

    return test_claim_on_its_other_seeds
