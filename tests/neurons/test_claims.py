"""The neuron-model family's claims on their other seeds (seed 0 runs in the notebook)."""
from claim_checks import claim_tests

test_claim_on_its_other_seeds = claim_tests("neurons")
