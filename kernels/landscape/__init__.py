"""Loss-landscape kernels: the loss of an MLP on a whole grid of parameter points theta + alpha d1 +
beta d2, with the perturbation folded into each layer's matmul (the G weight copies never exist), and
the mean cross-entropy of the G sets of logits."""
