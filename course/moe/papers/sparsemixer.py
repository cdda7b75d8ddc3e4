"""How biased are router-gradient estimators? Straight-through against SparseMixer (Liu, Gao, Chen
2023, "Sparse Backpropagation for MoE Training"), the estimator GRIN (Liu et al. 2024) builds on.

The model is a Switch-style top-1 layer with a *sampled* expert, small enough to enumerate:

    pi = softmax(x W_r)        D ~ Categorical(pi)        y = pi_D f_D(x)        loss l(y)

Its expected loss is J = sum_e pi_e l(pi_e f_e). The exact router gradient splits, as in the paper,
into a term that backpropagation through the gate value computes and a term of the discrete choice,
which conventional sparse (Switch) training drops:

    dJ/ds = E_D[ d l(pi_D f_D) / ds ]  +  sum_e l(pi_e f_e) d pi_e / ds

With phi_e(omega) = l(omega pi_e f_e) and sum_e d pi_e / ds = 0, the choice term equals
E_D[(phi_D(1) - phi_D(0)) d log pi_D / ds]: an integral of phi' from 0 to 1, which the estimators
approximate differently (the numerical-ODE view of Liu, Dong et al. 2023, "Bridging Discrete and
Backpropagation: Straight-Through and Beyond"):
  * straight-through treats the one-hot D as pi in the backward pass, a first-order step between
    one-hot choices; it needs every expert's output;
  * SparseMixer's mid-point method takes phi(1) - phi(0) ~ phi'(1/2): only expert D runs, at half
    its gate. The official code (microsoft/SparseMixer) realises both terms at once stochastically:
    the forward scales the gate by omega = 1/2 or 1 with probability 1/2 each and the backward
    doubles the gate's gradient, so the expected estimate is phi'(1) + phi'(1/2). Here that is
    "sparsemixer_midpoint". As released ("sparsemixer"), the argmax expert always takes omega = 1,
    a first-order step for the most likely choice.
  * "switch" is the gate-only gradient, the first term alone.
Left out: the released router's masking of experts far below the top logit before sampling, and
GRIN's SparseMixer-v2, which replaces the mid-point by a third-order rule.

The bias of an estimator is || E[estimate] - exact || / || exact || on dJ/dW_r, the expectation
computed exactly by enumerating every (D, omega) outcome of every token, weighted by its probability.
"""
from typing import Callable, NamedTuple

import torch
from einops import einsum
from torch import nn

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim

ESTIMATORS = ("straight_through", "sparsemixer_midpoint", "sparsemixer", "switch")


class RoutingProblem(NamedTuple):
    """Tokens, fixed linear experts and class labels: the loss seen by the router."""

    x: torch.Tensor        # [T, D] tokens
    experts: torch.Tensor  # [E, D, C] expert e maps a token to C class logits, f_e(x) = x A_e
    labels: torch.Tensor   # [T] target class of each token


def routing_problem(num_tokens: int = 64, num_experts: int = 4, d_model: int = 8,
                    num_classes: int = 5, expert_scale: float = 1.0, seed: int = 0):
    """A random problem and router: -> (RoutingProblem, w_router [D, E])."""
    check_int("moe.routing_problem", "num_experts", num_experts, low=2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_tokens, d_model, generator=g)
    experts = expert_scale * torch.randn(num_experts, d_model, num_classes, generator=g) / d_model ** 0.5
    labels = torch.randint(num_classes, (num_tokens,), generator=g)
    w_router = torch.randn(d_model, num_experts, generator=g) / d_model ** 0.5
    return RoutingProblem(x, experts, labels), w_router


def check_router(where: str, w_router, problem: RoutingProblem):
    """Check that w_router is a [D, E] float tensor matching the problem's tokens and experts."""
    check_tensor(where, "w_router", w_router, ndim=2, kind="float")
    check_shape(where, "w_router", w_router, (problem.x.shape[1], problem.experts.shape[0]),
                "[D, E] with D = x.shape[1] and E = experts.shape[0]")


def expert_outputs(problem: RoutingProblem):
    """Every expert on every token. -> [T, E, C]"""
    return einsum(problem.x, problem.experts, "T D, E D C -> T E C")


def token_losses(y, labels):
    """Cross-entropy of class logits y [..., C] for labels [...] -> [...]"""
    return -y.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def expected_loss(w_router, problem: RoutingProblem):
    """J = mean over tokens of sum_e pi_e l(pi_e f_e): the loss averaged over the sampled expert."""
    probs = (problem.x @ w_router).softmax(-1)  # [T, E]
    f = expert_outputs(problem)  # [T, E, C]
    y = probs.unsqueeze(-1) * f  # [T, E, C] the output if expert e is drawn
    losses = token_losses(y, problem.labels.unsqueeze(1).expand_as(probs))  # [T, E]
    return (probs * losses).sum(-1).mean()


def exact_router_gradient(w_router, problem: RoutingProblem):
    """dJ/dW_r in closed form, from the two terms of the module docstring. -> [D, E]

    d/dpi_e of pi_e l(pi_e f_e) is c_e = l(pi_e f_e) + pi_e <dl/dy(pi_e f_e), f_e>, and the softmax
    turns it into dJ/ds_j = pi_j (c_j - sum_e pi_e c_e).
    """
    check_router("moe.exact_router_gradient", w_router, problem)
    T = problem.x.shape[0]
    probs = (problem.x @ w_router).softmax(-1).detach()  # [T, E]
    f = expert_outputs(problem)  # [T, E, C]
    y = (probs.unsqueeze(-1) * f).requires_grad_()  # [T, E, C]
    losses = token_losses(y, problem.labels.unsqueeze(1).expand_as(probs))  # [T, E]
    (dl_dy,) = torch.autograd.grad(losses.sum(), y)  # per-outcome dl/dy, [T, E, C]
    c = losses.detach() + probs * (dl_dy * f).sum(-1)  # [T, E]
    d_logits = probs * (c - (probs * c).sum(-1, keepdim=True)) / T  # [T, E]
    return problem.x.t() @ d_logits


def straight_through_surrogate(w_router, problem: RoutingProblem, choice, omega=None):
    """Per-token losses whose router gradient is the straight-through estimate for draws `choice` [T].

    y = sum_e (onehot_e + pi_e - stopgrad(pi_e)) pi_e f_e: its value is pi_D f_D, and its gradient
    treats the one-hot choice as the probabilities. `omega` is unused (one signature for all). -> [T]
    """
    probs = (problem.x @ w_router).softmax(-1)  # [T, E]
    onehot = nn.functional.one_hot(choice, probs.shape[1]).to(probs.dtype)
    gates = (onehot + probs - probs.detach()) * probs  # [T, E]
    return token_losses(einsum(gates, expert_outputs(problem), "T E, T E C -> T C"), problem.labels)


def sparsemixer_surrogate(w_router, problem: RoutingProblem, choice, omega):
    """Per-token losses whose router gradient is SparseMixer's estimate for draws `choice`, `omega` [T].

    The forward runs expert D alone with its gate scaled by omega; the backward doubles the gate's
    gradient (how microsoft/SparseMixer balances its mid-point and first-order steps). -> [T]
    """
    probs = (problem.x @ w_router).softmax(-1)  # [T, E]
    gate = probs.gather(1, choice.unsqueeze(1)).squeeze(1)  # [T] pi_D
    multiplier = omega * gate.detach() + 2 * (gate - gate.detach())  # value omega pi_D, gradient 2x
    f = einsum(problem.x, problem.experts[choice], "T D, T D C -> T C")  # only expert D runs
    return token_losses(multiplier.unsqueeze(-1) * f, problem.labels)


def switch_surrogate(w_router, problem: RoutingProblem, choice, omega=None):
    """Conventional sparse training: backpropagate through pi_D only, dropping the choice's term."""
    probs = (problem.x @ w_router).softmax(-1)  # [T, E]
    gate = probs.gather(1, choice.unsqueeze(1))  # [T, 1]
    f = einsum(problem.x, problem.experts[choice], "T D, T D C -> T C")
    return token_losses(gate * f, problem.labels)


SURROGATES: dict[str, Callable] = {"straight_through": straight_through_surrogate,
                                   "sparsemixer_midpoint": sparsemixer_surrogate,
                                   "sparsemixer": sparsemixer_surrogate, "switch": switch_surrogate}


def check_estimator(where: str, estimator: str):
    """Check that `estimator` names one of ESTIMATORS."""
    if estimator not in SURROGATES:
        raise ValueError(f"{where}: `estimator` must be one of {ESTIMATORS}; got {estimator!r}.")


def half_gate_probability(estimator: str, probs, choice):
    """How likely an estimator is to halve the gate of the drawn experts `choice` [T]. -> [T]

    sparsemixer_midpoint: 1/2 for every expert (mid-point and first-order steps balanced);
    sparsemixer (as released): 0 for the argmax expert, which always takes the first-order step;
    the others never scale the gate.
    """
    p_half = torch.zeros_like(probs[:, 0])
    if estimator == "sparsemixer_midpoint":
        p_half = p_half + 0.5
    if estimator == "sparsemixer":
        p_half = torch.where(probs.argmax(-1) == choice, 0.0, 0.5)
    return p_half


def omega_outcomes(estimator: str, probs, choice):
    """The gate scales omega an estimator may draw for the experts `choice` [T], with probabilities.

    -> list of (omega [T], probability [T]).
    """
    p_half = half_gate_probability(estimator, probs, choice)
    ones = torch.ones_like(p_half)
    return [(ones, 1 - p_half), (0.5 * ones, p_half)]


def router_estimate(estimator: str, w_router, problem: RoutingProblem, choice, omega):
    """One draw's estimate of dJ/dW_r: the gradient of the mean surrogate loss. -> [D, E]"""
    check_estimator("moe.router_estimate", estimator)
    w = w_router.detach().requires_grad_()
    return torch.autograd.grad(SURROGATES[estimator](w, problem, choice, omega).mean(), w)[0]


def expected_estimate(estimator: str, w_router, problem: RoutingProblem):
    """E[estimate] over every token's draw, exactly, by enumerating the outcomes. -> [D, E]

    Tokens draw independently and an estimate is a mean over tokens, so its expectation is the
    gradient of the sum over outcomes (expert e, scale omega) of mean_t P_t(e, omega) surrogate_t.
    """
    check_estimator("moe.expected_estimate", estimator)
    check_router("moe.expected_estimate", w_router, problem)
    w = w_router.detach().requires_grad_()
    probs = (problem.x @ w).softmax(-1).detach()  # [T, E]
    T, E = probs.shape
    total = 0.0
    for e in range(E):
        choice = torch.full((T,), e, dtype=torch.long)
        for omega, p_omega in omega_outcomes(estimator, probs, choice):
            surrogate = SURROGATES[estimator](w, problem, choice, omega)  # [T]
            total = total + (probs[:, e] * p_omega * surrogate).mean()
    return torch.autograd.grad(total, w)[0]


def sampled_estimate(estimator: str, w_router, problem: RoutingProblem, draws: int,
                     generator: torch.Generator | None = None):
    """Monte Carlo mean of `draws` independent estimates (every token draws D, then omega). -> [D, E]"""
    check_estimator("moe.sampled_estimate", estimator)
    check_int("moe.sampled_estimate", "draws", draws, low=1)
    check_router("moe.sampled_estimate", w_router, problem)
    probs = (problem.x @ w_router).softmax(-1).detach()  # [T, E]
    T = probs.shape[0]
    choice = torch.multinomial(probs, draws, replacement=True, generator=generator).t()  # [N, T]
    p_half = half_gate_probability(estimator, probs.repeat(draws, 1), choice.flatten()).view(draws, T)
    omega = torch.where(torch.rand(draws, T, generator=generator) < p_half, 0.5, 1.0)  # [N, T]
    # the N draws of all tokens as one batch of N T tokens: its mean estimate is the draws' mean
    repeated = RoutingProblem(problem.x.repeat(draws, 1), problem.experts, problem.labels.repeat(draws))
    return router_estimate(estimator, w_router, repeated, choice.flatten(), omega.flatten())


def relative_bias(estimate, exact) -> float:
    """|| estimate - exact || / || exact || (Frobenius norms)."""
    return ((estimate - exact).norm() / exact.norm()).item()


def sparsemixer_experiment(seed: int, num_problems: int = 8) -> dict:
    """Relative bias of each estimator's expected router gradient, over `num_problems` random problems.

    The released variant (first-order step on the argmax expert) and gate-only backprop are reported
    beside straight-through and the mid-point method.
    """
    check_int("moe.sparsemixer_experiment", "num_problems", num_problems, low=1)
    biases = {name: [] for name in ESTIMATORS}
    for i in range(num_problems):
        problem, w_router = routing_problem(seed=1000 * seed + i)
        exact = exact_router_gradient(w_router, problem)
        for name in ESTIMATORS:
            biases[name].append(relative_bias(expected_estimate(name, w_router, problem), exact))
    m = {f"bias_{name}": sum(values) / len(values) for name, values in biases.items()}
    m["bias_ratio"] = m["bias_sparsemixer_midpoint"] / m["bias_straight_through"]
    m["midpoint_wins"] = sum(a < b for a, b in zip(biases["sparsemixer_midpoint"],
                                                    biases["straight_through"]))
    m["problems"] = num_problems
    return m


CLAIM = Claim(
    paper="Liu, Gao, Chen 2023 (SparseMixer, the estimator of GRIN)",
    citation="Sparse Backpropagation for MoE Training (arXiv:2310.00811), section 3; GRIN: GRadient-"
             "INformed MoE (arXiv:2409.12136)",
    statement="the mid-point method estimates the router gradient more precisely than "
              "straight-through's first-order step, running only the chosen expert",
    kind=REPRODUCTION,
    experiment=sparsemixer_experiment,
    thresholds=("bias_ratio <= 0.5", "midpoint_wins >= 7"),
    summary=lambda m: (
        f"relative bias of the expected router gradient (mean of {m['problems']} random problems, "
        f"4 experts, sampled top-1): straight-through {m['bias_straight_through']:.2g}, SparseMixer "
        f"mid-point {m['bias_sparsemixer_midpoint']:.2g} ({m['bias_ratio']:.2g}x; lower on "
        f"{m['midpoint_wins']} of {m['problems']}); as released, with a first-order step on the "
        f"argmax expert, {m['bias_sparsemixer']:.2g}; gate-only backprop (Switch) "
        f"{m['bias_switch']:.2g}"),
)
