"""The graph family's claims on the seeds its notebook does not run (the checks: claim_checks.py)."""
from claim_checks import claim_tests

test_claim_on_its_other_seeds = claim_tests("gnn")
