"""Learnable commutative monoids (LCM) against a recurrent aggregator, on size extrapolation.

Ong and Velickovic 2022, "Learnable Commutative Monoids for Graph Neural Networks" (LoG 2022,
arXiv:2212.08541). A well-behaved aggregator is a commutative monoid over the latent space; LCM
learns its binary operator (a GRU cell, symmetrised: a (+) b = (GRU(a; b) + GRU(b; a)) / 2), learns
its identity element e (the padding of each neighbourhood to a power of two) and folds the
neighbours in a balanced binary tree, ceil(log2 d) steps deep for d neighbours, where a recurrent
aggregator (Cohen-Karlik et al. 2020's regularised RNNs) is d steps deep
(`course.gnn.aggregators.CommutativeMonoid`, `RecurrentAggregation`). Associativity and the identity
law are encouraged by a penalty, not built in.

The toy (`aggregator_toy`): stars with 2-8 leaves for training, 16-64 for testing; the target is
the second largest of the leaves' values, an order-free task that a top-2 state solves for any size.
The LSTM reads the leaves in key order, which is unrelated to the values (random for this task).
The claim is the paper's comparison, LCM against the recurrent aggregator, at the same message and
readout networks; the max aggregator, the best fixed one on this task, is reported beside them.
"""
import torch

from course.claims import REPRODUCTION, Claim
from course.gnn.aggregators import CommutativeMonoid, order_within_segments
from course.gnn.papers.aggregator_toy import (
    centre_segments,
    extrapolation_data,
    extrapolation_error,
    trained_study,
)

TASK = "second_largest"


def permutation_sensitivity(model, data, seed: int = 0) -> float:
    """RMS change of the model's outputs when every neighbourhood is read in a random order, over
    the RMS spread of the outputs (0: invariant)."""
    graph, centres, _ = data
    ptr = centre_segments(graph, centres)
    with torch.no_grad():
        messages = model.messages(graph)
        out = model.readout(model.aggregate(messages, ptr))
        shuffle = order_within_segments(torch.rand(messages.shape[0],
                                                   generator=torch.Generator().manual_seed(seed)), ptr)
        shuffled = model.readout(model.aggregate(messages[shuffle], ptr))
    return ((shuffled - out).pow(2).mean().sqrt() / out.std()).item()


def commutative_monoids_experiment(seed: int) -> dict:
    """Relative test MSE (16-64 leaves) of LCM, the LSTM and max on the second largest value."""
    study = trained_study(seed)
    lcm, lstm, top = (extrapolation_error(seed, TASK, a) for a in ("lcm", "lstm", "max"))
    test = extrapolation_data(16, seed)
    return {"lcm_error": lcm, "lstm_error": lstm, "max_error": top, "lstm_over_lcm": lstm / lcm,
            "max_over_lcm": top / lcm,
            "lcm_train_error": study["train"][TASK, "lcm"], "lstm_train_error": study["train"][TASK, "lstm"],
            "lcm_depth_at_64": float(CommutativeMonoid.depth(64)), "lstm_depth_at_64": 64.0,
            "lcm_permutation_sensitivity": permutation_sensitivity(study["models"][TASK, "lcm"], test, seed)}


CLAIM = Claim(
    paper="Ong and Velickovic 2022",
    citation="Learnable Commutative Monoids for Graph Neural Networks (LoG 2022, arXiv:2212.08541), "
             "the LCM aggregator and its comparison with recurrent aggregators",
    statement="a learned commutative monoid folded in a balanced tree (O(log d) depth) matches or beats "
              "a recurrent aggregator (O(d) depth) when neighbourhoods grow beyond those seen in training",
    kind=REPRODUCTION,
    experiment=commutative_monoids_experiment,
    thresholds=("lstm_over_lcm >= 1.5",),
    summary=lambda m: (f"second largest of 16-64 neighbours after training on 2-8: relative MSE "
                       f"{m['lcm_error']:.2f} with LCM ({m['lcm_depth_at_64']:.0f} steps deep at 64) "
                       f"against {m['lstm_error']:.1f} with the LSTM (64 steps), "
                       f"{m['lstm_over_lcm']:.0f}x worse; max pooling {m['max_error']:.2f}. Shuffling "
                       f"the neighbours moves LCM's outputs by {m['lcm_permutation_sensitivity']:.2f} "
                       f"of their spread (the operator is commutative, not exactly associative)."),
    note="Both learned aggregators fit the training sizes (errors in the record); the LSTM's error "
         "grows with the length it has to read. Max pooling, which cannot compute the second largest "
         "but tracks it, comes within a factor of 1.5-3.5 of LCM.",
)
