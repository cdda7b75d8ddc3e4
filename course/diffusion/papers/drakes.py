"""DRAKES: reward fine-tuning of a masked diffusion model through Gumbel-softmax relaxed trajectories.

Wang, Uehara, He, Wang, Biancalani, Lal, Jaakkola, Levine, Wang and Regev 2024, "Fine-Tuning Discrete
Diffusion Models via Reward Optimization with Applications to DNA and Protein Design" (ICLR 2025,
arXiv:2410.13643), sections 3-4, Algorithm 1.

The objective (sec. 3) is the reward of the samples minus alpha times the KL divergence between the
fine-tuned and the pretrained model's trajectories,

    max_theta  E_{x_{0:1} ~ P_theta} [ r(x_0) ]  -  alpha KL(P_theta || P_pre),                     [1]

whose optimum generates x_0 with probability p*(x) proportional to p_pre(x) exp(r(x) / alpha). DRAKES
(Algorithm 1) draws whole trajectories with every categorical draw replaced by its Gumbel-softmax
relaxation, softmax((log pi + g) / tau), so the reward of the end point and the KL accumulated along
the way are differentiable in theta; the end point enters the reward straight-through (one-hot
forward, relaxed backward), and the loss is backpropagated through the trajectory.

The toy: `discrete.dna_toy`'s time-free denoiser (`discrete.trained_denoiser`, shared with the RADD
claim) is the pretrained model; the sampler unmasks one uniformly chosen position per step (the
exact reverse process of a time-free denoiser), whose trajectory KL is the sum over the steps of
KL(q_theta || q_pre) at the position unmasked. The reward is the number of CpG sites (C then G), a
motif count, differentiable as sum_j x_j[C] x_{j+1}[G] over relaxed tokens. The paper relaxes the
draw over the letters and MASK at every position; with one position per step only the letter is
drawn, so only it is relaxed. With 6 steps the gradient runs through the whole trajectory (the paper
truncates it to the last steps of 128) and without gradient clipping. Every number of the claim is
exact: a model's distribution over all 4^6 strings comes from `discrete.order_sampler_distribution`,
and [1]'s optimum from the pretrained model's.
"""
import copy

import torch
import torch.nn.functional as F

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.diffusion import discrete
from course.train import fit

MOTIF = (1, 2)  # C, G: a CpG site
ALPHA, TAU = 1.0, 0.5  # KL weight, Gumbel-softmax temperature
ITERATIONS, BATCH, LR = 40, 64, 1e-2


def gumbel_softmax(logits, tau: float, generator: torch.Generator):
    """The relaxed categorical draw softmax((logits + g) / tau), g ~ Gumbel(0, 1) (Jang et al. 2017).
    logits [..., K] -> [..., K], rows on the simplex; one-hot as tau -> 0"""
    where = "drakes.gumbel_softmax"
    check_tensor(where, "logits", logits, kind="float")
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ValueError(f"{where}: `tau` must be a number > 0; got {tau!r}.")
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp(1e-12, 1 - 1e-12)
    return F.softmax((logits - torch.log(-torch.log(u))) / tau, -1)


def motif_reward(x, motif=MOTIF, vocab: int = 4):
    """The number of occurrences of `motif`, sum_j prod_m x_{j+m}[motif_m], over hard or relaxed
    tokens. x [N, L] tokens or [N, L, V] rows on the simplex -> [N]"""
    where = "drakes.motif_reward"
    if x.is_floating_point():
        check_tensor(where, "x", x, ndim=3)
        check_finite(where, "x", x)
    else:
        check_tensor(where, "x", x, ndim=2, kind="int")
        x = F.one_hot(x, vocab).double()
    m = len(motif)
    if not 1 <= m <= x.shape[1] or not all(0 <= c < x.shape[2] for c in motif):
        raise ValueError(f"{where}: `motif` must be 1..{x.shape[1]} letters in 0..{x.shape[2] - 1}; "
                         f"got {motif}.")
    windows = [x[:, j:x.shape[1] - m + 1 + j, c] for j, c in enumerate(motif)]  # m x [N, L - m + 1]
    return torch.stack(windows).prod(0).sum(1)


def relaxed_trajectory(model, pretrained, batch: int, tau: float, generator: torch.Generator):
    """Algorithm 1's relaxed rollout: one random position per step, its letter a Gumbel-softmax draw
    from the model; the KL to the pretrained model's draw summed along the way (0 without one).
    -> x_0 [B, L, V] (one-hot forward, relaxed gradient), KL [B]"""
    L, V = model.length, model.vocab
    state = F.one_hot(torch.full((batch, L), V), V + 1).float()  # every position masked
    order = torch.rand(batch, L, generator=generator).argsort(1)
    rows, kl = torch.arange(batch), torch.zeros(batch)
    for step in range(L):
        position = order[:, step]
        log_q = F.log_softmax(model(state)[rows, position], -1)  # [B, V]
        if pretrained is not None:
            log_pre = F.log_softmax(pretrained(state)[rows, position], -1)
            kl = kl + (log_q.exp() * (log_q - log_pre)).sum(-1)
        letter = F.pad(gumbel_softmax(log_q, tau, generator), (0, 1))  # [B, V + 1], MASK weight 0
        chosen = F.one_hot(position, L).bool()[..., None]  # [B, L, 1]
        state = torch.where(chosen, letter[:, None, :], state)
    soft = state[..., :V]
    hard = F.one_hot(soft.argmax(-1), V).to(soft.dtype)
    return soft + (hard - soft).detach(), kl


def fine_tune(pretrained, alpha: float, seed: int, iterations: int = ITERATIONS, batch: int = BATCH,
              tau: float = TAU, lr: float = LR):
    """[1] by DRAKES: Adam on -r(x_0) + alpha KL over relaxed trajectories, from a copy of `pretrained`."""
    if not alpha >= 0:
        raise ValueError(f"drakes.fine_tune: `alpha` must be >= 0; got {alpha}.")
    check_int("drakes.fine_tune", "iterations", iterations, low=0)
    model = copy.deepcopy(pretrained).requires_grad_(True).train()
    frozen = copy.deepcopy(pretrained).requires_grad_(False).eval()
    g = torch.Generator().manual_seed(seed)

    def loss():
        x0, kl = relaxed_trajectory(model, frozen if alpha > 0 else None, batch, tau, g)
        return (-motif_reward(x0) + alpha * kl).mean()

    if iterations:
        fit(model.parameters(), loss, iterations, lr, seed=seed, desc=f"DRAKES, alpha = {alpha:g}")
    return model.eval().requires_grad_(False)


def tilted(p, reward, alpha: float):
    """[1]'s optimum, p(x) exp(r(x) / alpha), normalised. p, reward [K] -> [K]"""
    w = p.double() * torch.exp((reward.double() - reward.max()) / alpha)
    return w / w.sum()


def evaluate(model, p_pre, dist: discrete.StringDistribution, pretrained=None) -> dict:
    """Exact mean reward, entropy, KL to the pretrained strings' distribution p_pre [V^L] (and, given
    the `pretrained` denoiser, of the trajectories), and mean data log-likelihood of the strings."""
    p, path_kl = discrete.order_sampler_distribution(model, reference=pretrained)
    m = {"reward": float((p * motif_reward(dist.strings, vocab=dist.vocab)).sum()),
         "entropy": discrete.entropy(p), "kl": discrete.kl_divergence(p, p_pre),
         "data_loglik": float((p * dist.probs.clamp(min=1e-300).log()).sum())}
    return m if pretrained is None else {**m, "path_kl": path_kl}


def drakes_experiment(seed: int) -> dict:
    """The pretrained model, DRAKES with the KL term and without it, and [1]'s exact optimum."""
    dist = discrete.dna_toy()
    pretrained = discrete.trained_denoiser(seed)
    p_pre = discrete.order_sampler_distribution(pretrained)[0]
    m = {f"pretrained_{k}": v for k, v in evaluate(pretrained, p_pre, dist).items()}
    for name, alpha in (("drakes", ALPHA), ("nokl", 0.0)):
        model = fine_tune(pretrained, alpha, seed)
        m.update({f"{name}_{k}": v for k, v in evaluate(model, p_pre, dist, pretrained).items()})
    reward = motif_reward(dist.strings, vocab=dist.vocab)
    optimum = tilted(p_pre, reward, ALPHA)
    m["optimum_reward"] = float((optimum * reward).sum())
    m["optimum_entropy"], m["optimum_kl"] = discrete.entropy(optimum), discrete.kl_divergence(optimum, p_pre)
    m["optimum_gain_share"] = ((m["drakes_reward"] - m["pretrained_reward"])
                               / (m["optimum_reward"] - m["pretrained_reward"]))
    m["reward_ratio"] = m["drakes_reward"] / m["pretrained_reward"]
    m["entropy_ratio"] = m["drakes_entropy"] / m["pretrained_entropy"]
    m["nokl_entropy_ratio"] = m["nokl_entropy"] / m["pretrained_entropy"]
    m["kl_ratio"] = m["nokl_kl"] / m["drakes_kl"]
    return m


CLAIM = Claim(
    paper="Wang et al. 2024 (DRAKES)",
    citation="Fine-Tuning Discrete Diffusion Models via Reward Optimization with Applications to DNA and "
             "Protein Design (ICLR 2025, arXiv:2410.13643), sections 3-4, Algorithm 1",
    statement="backpropagating a differentiable reward through Gumbel-softmax relaxed sampling "
              "trajectories, with a KL term to the pretrained model, raises the reward substantially "
              "while the samples stay close to the pretrained model and diverse; without the KL term "
              "the fine-tuned model drifts away and its diversity collapses (reward hacking)",
    kind=REPRODUCTION,
    experiment=drakes_experiment,
    thresholds=("reward_ratio >= 1.5", "entropy_ratio >= 0.6", "nokl_entropy_ratio <= 0.5", "kl_ratio >= 2"),
    note="Holds on every seed. DRAKES doubles the CpG count (2.2-2.3x) and gets 71-88% of the way to the "
         "exact optimum of [1] at the same alpha, with entropy 86-93% of the pretrained model's and a KL of "
         "0.26-0.37 nats; without the KL term every seed collapses onto the single string CGCGCG "
         "(reward 3, entropy 0, KL 4.1-4.5 nats). In this toy that string is also the data's most likely "
         "one, so the collapse costs diversity, not naturalness: the data log-likelihood of the samples "
         "rises. The claim is about the trade-off, so the thresholds compare with the pretrained model "
         "and with the run without KL, not with the paper's DNA and protein numbers.",
    summary=lambda m: (
        f"CpG sites per 6-letter string (exact over all strings): pretrained {m['pretrained_reward']:.2f}, "
        f"DRAKES (alpha = {ALPHA:g}) {m['drakes_reward']:.2f} ({m['reward_ratio']:.1f}x; the optimum of "
        f"[1] {m['optimum_reward']:.2f}, {m['optimum_gain_share']:.0%} of its gain), without KL "
        f"{m['nokl_reward']:.2f}; entropy of the samples {m['pretrained_entropy']:.2f} -> "
        f"{m['drakes_entropy']:.2f} nats with KL, {m['nokl_entropy']:.2f} without; KL to the pretrained "
        f"model {m['drakes_kl']:.2f} vs {m['nokl_kl']:.2f} nats ({m['kl_ratio']:.1f}x)"),
)
