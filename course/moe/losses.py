"""The balancing losses of mixture-of-experts routers, written once for every experiment.

Shazeer et al. 2017, "Outrageously Large Neural Networks", section 4 and appendix A:

    Importance(X) = sum_x G(x)                                                      (eq. 6)
    L_importance  = w_importance * CV(Importance(X))^2                              (eq. 7)
    P(x, i)       = Phi( ((x W_g)_i - kth_excluding(H(x), k, i)) / Softplus((x W_noise)_i) )   (eq. 9)
    Load(X)_i     = sum_x P(x, i)                                                   (eq. 10)
    L_load        = w_load * CV(Load(X))^2                                          (eq. 11)

P(x, i) is the probability, over a new draw of the noise of expert i alone, that expert i is still
among the top k: a smooth, differentiable estimate of how many tokens the expert receives.
kth_excluding(v, k, i) is the k-th largest entry of v with entry i left out. CV is the coefficient of
variation, standard deviation over mean, across the E experts.

Fedus et al. 2021, "Switch Transformers", eqs. 4-6: the auxiliary loss of a top-1 (or top-k) router,

    L_aux = E * sum_e f_e P_e                                                       (eq. 4)
    f_e   = fraction of the assignments dispatched to expert e                     (eq. 5)
    P_e   = mean router probability of expert e over the batch                     (eq. 6)

which is 1 under a uniform routing and grows as the load concentrates. f_e is a count, so the
gradient flows through P_e alone.
"""
import torch

from course.moe.gating import Gating


def cv_squared(values, eps: float = 1e-10):
    """Squared coefficient of variation of a vector: var / mean^2 (population variance). [E] -> []"""
    if values.numel() < 2:
        return values.new_zeros(())
    return values.var(correction=0) / (values.mean() ** 2 + eps)


def importance_loss(gates):
    """Eqs. 6-7 without the weight, for a dense gate or router-probability matrix. [T, E] -> []"""
    return cv_squared(gates.sum(0))


def switch_balance_loss(probs, expert_index):
    """Switch Transformer eqs. 4-6: E sum_e f_e P_e (1 when balanced).

    probs [..., E] router probabilities, expert_index [..., k] the experts each token was sent to.
    """
    E = probs.shape[-1]
    f = torch.bincount(expert_index.flatten(), minlength=E).to(probs.dtype) / expert_index.numel()
    return E * (f * probs.reshape(-1, E).mean(0)).sum()


def dense_gates(gating: Gating):
    """G(x) as a dense matrix, zero outside the top k. -> [T, E]"""
    return torch.zeros_like(gating.logits).scatter(1, gating.expert_index, gating.gates)


def importance(gating: Gating):
    """Eq. 6: the batchwise sum of each expert's gate values. -> [E]"""
    return dense_gates(gating).sum(0)


def load(gating: Gating):
    """Eq. 10 with eq. 9: the smooth estimate of the tokens each expert receives. -> [E]

    Without noise (evaluation, or no W_noise), the load is the exact count of tokens routed to each
    expert, which is not differentiable.
    """
    E = gating.logits.shape[1]
    k = gating.expert_index.shape[1]
    if gating.noise_std is None or k == E:
        return torch.bincount(gating.expert_index.flatten(), minlength=E).to(gating.logits.dtype)
    top = gating.logits.topk(k + 1, dim=1).values  # [T, k + 1]
    in_top_k = torch.zeros_like(gating.logits, dtype=torch.bool).scatter(1, gating.expert_index, True)
    # leaving out expert i: if i is in the top k, the k-th largest of the rest is the (k+1)-th overall
    threshold = torch.where(in_top_k, top[:, k:k + 1], top[:, k - 1:k])  # [T, E]
    normal = torch.distributions.Normal(0.0, 1.0)
    return normal.cdf((gating.clean_logits - threshold) / gating.noise_std).sum(0)


def balance_loss(gating: Gating, w_importance: float, w_load: float):
    """Eqs. 7 + 11: the auxiliary loss added to the task loss."""
    return w_importance * cv_squared(importance(gating)) + w_load * cv_squared(load(gating))
