"""Bayesian Flow Networks: continuous data on the 2-D ring, discrete data on binary strings.

Graves, Srivastava, Atkinson and Gomez 2023, "Bayesian Flow Networks" (arXiv:2308.07037). A BFN
does not denoise a sample: it refines the parameters theta of a factorised *input distribution* by
Bayesian inference on noisy *sender* samples y of the data x, and a network maps theta (and the time
t) to an *output distribution* over the data, in which the variables depend on each other.
Sampling sends samples of the output distribution instead of x.

Continuous data (section 4). p_I(x | theta) = N(x | mu, rho^-1 I), prior mu = 0, rho = 1. A sender
sample y ~ N(x, alpha^-1 I) updates the parameters to the precision-weighted average (section 4.2)

    rho' = rho + alpha,   mu' = (rho mu + alpha y) / rho'.

With the accuracy schedule beta(t) = sigma_1^(-2t) - 1 the Bayesian flow distribution is
p_F(mu | x; t) = N(mu | gamma(t) x, gamma(t) (1 - gamma(t)) I), gamma(t) = beta / (1 + beta) =
1 - sigma_1^(2t). The network predicts the noise eps_hat, and OUTPUT_PREDICTION is x_hat = mu / gamma -
sqrt((1 - gamma) / gamma) eps_hat, clipped to the data range and 0 below t_min; the continuous-time loss
is L_inf = -ln(sigma_1) E_t[sigma_1^(-2t) ||x - x_hat||^2] (Algorithm 2). Sampling: Algorithm 3,
alpha_i = sigma_1^(-2i/n) (1 - sigma_1^(2/n)), whose sum over n steps is beta(1).

Discrete data (section 6). theta [D, K] holds a categorical per variable, prior uniform. The sender
distribution is N(y | alpha (K e_x - 1), alpha K I) and the update theta' = e^y theta / sum_k
e^(y_k) theta_k; the accuracy schedule beta(t) = beta_1 t^2; the flow p_F(theta | x; t) = softmax(y),
y ~ N(beta(t) (K e_x - 1), beta(t) K I); the loss L_inf = K beta_1 E_t[t ||e_x - e_hat(theta, t)||^2]
with e_hat the output distribution's mean (Algorithm 8). Sampling: Algorithm 9, alpha_i = beta_1
(2i - 1) / n^2.

The toys: the family's 8-component ring scaled by 0.4 into the paper's [-1, 1] box, and binary
strings of length 8 from a mixture of bit patterns with flips, whose 2^8 probabilities are exact.
The paper leaves the network free; the toy's small MLPs get inputs that suit them (EDM's c_in scaling
and Fourier features of mu; the log of theta, added to the output logits). Both samplers return the
input distribution's parameters at every step besides the samples (what the notebook draws).
"""
import functools
import math

import torch
from torch import nn

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.diffusion import mixtures
from course.train import DecayingAdam, fit, seeded

SIGMA_1, BETA_1, T_MIN = 0.02, 3.0, 1e-6  # sigma_1: a third of a component's std; beta_1 for K = 2
RING_SCALE = 0.4  # the ring of radius 2 (std 0.15) scaled into [-1, 1]
PATTERNS = ("00001111", "11110000", "01010101", "11111111")  # the string toy's modes
PATTERN_WEIGHTS, FLIP = (0.4, 0.3, 0.2, 0.1), 0.05
HIDDEN, FREQUENCIES = 64, 3
CONTINUOUS_STEPS, CONTINUOUS_BATCH, CONTINUOUS_LR = 250, 512, 6e-2
DISCRETE_STEPS, DISCRETE_BATCH, DISCRETE_LR = 200, 256, 1e-2
SAMPLES, SAMPLING_STEPS, TRAINING_SIZE, LENGTH = 2000, 50, 4096, 8


def _check_t(where: str, t) -> torch.Tensor:
    check_tensor(where, "t", t, kind="float")
    if t.numel() and not ((t >= 0) & (t <= 1)).all():
        raise ValueError(f"{where}: `t` must lie in [0, 1]; got values from {t.min().item():g} to "
                         f"{t.max().item():g}.")
    return t


def _check_positive(where: str, name: str, value, below_one: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf) \
            or (below_one and not value < 1):
        raise ValueError(f"{where}: `{name}` must be a number in (0, {1 if below_one else 'inf'}); "
                         f"got {value!r}.")


def continuous_beta(t, sigma_1: float = SIGMA_1):
    """beta(t) = sigma_1^(-2t) - 1 (section 4): 0 at t = 0, sigma_1^-2 - 1 at t = 1. t [N] -> [N]"""
    _check_positive("bfn.continuous_beta", "sigma_1", sigma_1, below_one=True)
    return sigma_1 ** (-2 * _check_t("bfn.continuous_beta", t)) - 1


def continuous_gamma(t, sigma_1: float = SIGMA_1):
    """gamma(t) = beta / (1 + beta) = 1 - sigma_1^(2t) (section 4). t [N] -> [N]"""
    _check_positive("bfn.continuous_gamma", "sigma_1", sigma_1, below_one=True)
    return 1 - sigma_1 ** (2 * _check_t("bfn.continuous_gamma", t))


def discrete_beta(t, beta_1: float = BETA_1):
    """beta(t) = beta_1 t^2 (section 6): 0 at t = 0, beta_1 at t = 1. t [N] -> [N]"""
    _check_positive("bfn.discrete_beta", "beta_1", beta_1)
    return beta_1 * _check_t("bfn.discrete_beta", t) ** 2


def gaussian_update(mu, rho, y, alpha):
    """Bayesian update of N(mu, rho^-1) by y ~ N(x, alpha^-1) (section 4.2). mu, y [N, D] -> (mu', rho')"""
    where = "bfn.gaussian_update"
    check_tensor(where, "mu", mu, kind="float")
    check_tensor(where, "y", y, kind="float")
    if y.shape != mu.shape:
        raise ValueError(f"{where}: `y` must have the shape of `mu` {tuple(mu.shape)}; got {tuple(y.shape)}.")
    for name, value in (("rho", rho), ("alpha", alpha)):
        if not bool(torch.all(torch.as_tensor(value) > 0)):
            raise ValueError(f"{where}: `{name}` (a precision) must be > 0; got {value!r}.")
    rho_new = rho + alpha
    return (rho * mu + alpha * y) / rho_new, rho_new


def categorical_update(theta, y):
    """Bayesian update theta' = e^y theta / sum_k e^(y_k) theta_k (section 6). [N, D, K] -> same"""
    where = "bfn.categorical_update"
    check_tensor(where, "theta", theta, kind="float")
    check_tensor(where, "y", y, kind="float")
    if y.shape != theta.shape:
        raise ValueError(f"{where}: `y` must have the shape of `theta` {tuple(theta.shape)}; got "
                         f"{tuple(y.shape)}.")
    if theta.numel() and ((theta < 0).any() or not torch.allclose(theta.sum(-1), torch.ones(()).to(theta),
                                                                   atol=1e-4)):
        raise ValueError(f"{where}: `theta` must hold distributions over its last axis (>= 0, summing to 1).")
    return torch.softmax(y + theta.clamp_min(1e-30).log(), dim=-1)  # in log space: no overflow of e^y


def continuous_output(mu, t, eps_hat, sigma_1: float = SIGMA_1, x_range=(-1.0, 1.0), t_min: float = T_MIN):
    """x_hat = mu / gamma - sqrt((1 - gamma) / gamma) eps_hat, clipped; 0 for t < t_min (Algorithm 1).
    mu, eps_hat [N, D], t [N] -> [N, D]"""
    where = "bfn.continuous_output"
    check_tensor(where, "mu", mu, ndim=2, kind="float")
    if eps_hat.shape != mu.shape or t.shape != mu.shape[:1]:
        raise ValueError(f"{where}: `eps_hat` must be of shape [N, D] = {tuple(mu.shape)} and `t` of shape "
                         f"[N]; got {tuple(eps_hat.shape)} and {tuple(t.shape)}.")
    gamma = continuous_gamma(t, sigma_1).clamp_min(1e-12)[:, None]
    x_hat = mu / gamma - ((1 - gamma) / gamma).sqrt() * eps_hat
    return torch.where(t[:, None] < t_min, torch.zeros_like(x_hat), x_hat.clamp(*x_range))


class EpsilonMLP(nn.Module):
    """The continuous BFN's network: (mu [N, D], t [N]) -> eps_hat [N, D], an MLP of two hidden layers.

    Its input is mu scaled to unit variance under the flow (by 1 / sqrt(gamma^2 var + gamma (1 - gamma)),
    EDM's c_in), sin and cos of pi 2^j mu for j < FREQUENCIES (sharp modes from a small MLP), and t."""

    def __init__(self, dim: int, hidden: int = HIDDEN, data_var: float = 1 / 3, sigma_1: float = SIGMA_1):
        super().__init__()
        self.data_var, self.sigma_1 = data_var, sigma_1
        self.net = nn.Sequential(nn.Linear(dim * (1 + 2 * FREQUENCIES) + 1, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, mu, t):
        gamma = continuous_gamma(t, self.sigma_1)[:, None]
        c_in = (gamma ** 2 * self.data_var + gamma * (1 - gamma)).clamp_min(1e-12).rsqrt()
        angles = torch.cat([mu * (math.pi * 2 ** j) for j in range(FREQUENCIES)], dim=1)
        return self.net(torch.cat([c_in * mu, angles.sin(), angles.cos(), 2 * t[:, None] - 1], dim=1))


class CategoricalMLP(nn.Module):
    """The discrete BFN's network: (theta [N, D, K], t [N]) -> logits of p_O [N, D, K].

    The MLP reads the centred log theta (the sender's evidence, sum of the y so far) and t, and its output
    is added to log theta: it predicts what the other variables say about each one."""

    def __init__(self, length: int, classes: int = 2, hidden: int = HIDDEN):
        super().__init__()
        self.shape = (length, classes)
        self.net = nn.Sequential(nn.Linear(length * classes + 1, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, length * classes))

    def forward(self, theta, t):
        evidence = theta.clamp_min(1e-30).log()
        evidence = evidence - evidence.mean(-1, keepdim=True)
        h = torch.cat([0.5 * evidence.flatten(1), 2 * t[:, None] - 1], dim=1)
        return evidence + self.net(h).view(-1, *self.shape)


def continuous_loss(net, x, sigma_1: float = SIGMA_1, generator=None):
    """L_inf = -ln sigma_1 E_t [sigma_1^(-2t) ||x - x_hat(theta, t)||^2] (Algorithm 2), mu drawn from the flow
    p_F(mu | x; t) = N(gamma x, gamma (1 - gamma) I). x [B, D] -> scalar"""
    check_tensor("bfn.continuous_loss", "x", x, ndim=2, kind="float")
    t = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
    gamma = continuous_gamma(t, sigma_1)[:, None]
    mu = gamma * x + (gamma * (1 - gamma)).sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    x_hat = continuous_output(mu, t, net(mu, t), sigma_1)
    return (-math.log(sigma_1) * sigma_1 ** (-2 * t) * (x - x_hat).pow(2).sum(1)).mean()


def discrete_loss(net, x, classes: int = 2, beta_1: float = BETA_1, generator=None):
    """L_inf = K beta_1 E_t [t ||e_x - e_hat(theta, t)||^2] (Algorithm 8), theta = softmax(y) with
    y ~ N(beta (K e_x - 1), beta K I). x [B, D] integers in [0, K) -> scalar"""
    check_tensor("bfn.discrete_loss", "x", x, ndim=2, kind="int")
    e_x = nn.functional.one_hot(x.long(), classes).float()  # [B, D, K]
    t = torch.rand(x.shape[0], generator=generator)
    beta = discrete_beta(t, beta_1)[:, None, None]
    y = beta * (classes * e_x - 1) + (beta * classes).sqrt() * torch.randn(e_x.shape, generator=generator)
    e_hat = net(torch.softmax(y, dim=-1), t).softmax(-1)
    return (classes * beta_1 * t * (e_x - e_hat).pow(2).sum((1, 2))).mean()


@torch.no_grad()
def sample_continuous(net, n: int, dim: int, steps: int, sigma_1: float = SIGMA_1, seed: int = 0,
                      x_range=(-1.0, 1.0), callback=None):
    """Algorithm 3: n samples in `steps` sender updates of mu; alpha_i = sigma_1^(-2i/n) (1 - sigma_1^(2/n)).
    -> x [n, D], and the trajectory {"t": [steps + 1], "mu": [steps + 1, n, D], "rho": [steps + 1]}"""
    where = "bfn.sample_continuous"
    check_int(where, "n", n, low=1)
    check_int(where, "dim", dim, low=1)
    check_int(where, "steps", steps, low=1)
    _check_positive(where, "sigma_1", sigma_1, below_one=True)
    g = torch.Generator().manual_seed(seed)
    mu, rho = torch.zeros(n, dim), 1.0
    mus, rhos = [mu], [rho]
    for i in range(1, steps + 1):
        t = torch.full((n,), (i - 1) / steps)
        x_hat = continuous_output(mu, t, _finite(where, net(mu, t), mu), sigma_1, x_range)
        alpha = sigma_1 ** (-2 * i / steps) * (1 - sigma_1 ** (2 / steps))
        y = x_hat + alpha ** -0.5 * torch.randn(n, dim, generator=g)
        mu, rho = gaussian_update(mu, rho, y, alpha)
        mus.append(mu), rhos.append(rho)
        if callback is not None:
            callback({"i": i, "t": (i - 1) / steps, "mu": mu, "rho": rho, "x_hat": x_hat})
    t = torch.ones(n)
    x = continuous_output(mu, t, _finite(where, net(mu, t), mu), sigma_1, x_range)
    return x, {"t": torch.arange(steps + 1) / steps, "mu": torch.stack(mus), "rho": torch.tensor(rhos)}


@torch.no_grad()
def sample_discrete(net, n: int, length: int, steps: int, classes: int = 2, beta_1: float = BETA_1,
                    seed: int = 0, callback=None):
    """Algorithm 9: n samples in `steps` sender updates of theta; alpha_i = beta_1 (2i - 1) / n^2.
    -> x [n, D] integers, and the trajectory {"t": [steps + 1], "theta": [steps + 1, n, D, K]}"""
    where = "bfn.sample_discrete"
    for name, value, low in (("n", n, 1), ("length", length, 1), ("steps", steps, 1),
                             ("classes", classes, 2)):
        check_int(where, name, value, low=low)
    _check_positive(where, "beta_1", beta_1)
    g = torch.Generator().manual_seed(seed)
    theta = torch.full((n, length, classes), 1 / classes)
    thetas = [theta]
    for i in range(1, steps + 1):
        t = torch.full((n,), (i - 1) / steps)
        probs = _finite(where, net(theta, t), theta).softmax(-1)
        k = _categorical(probs, g)
        alpha = beta_1 * (2 * i - 1) / steps ** 2
        e_k = nn.functional.one_hot(k, classes).float()
        y = alpha * (classes * e_k - 1) + (alpha * classes) ** 0.5 * torch.randn(e_k.shape, generator=g)
        theta = categorical_update(theta, y)
        thetas.append(theta)
        if callback is not None:
            callback({"i": i, "t": (i - 1) / steps, "theta": theta, "k": k})
    probs = _finite(where, net(theta, torch.ones(n)), theta).softmax(-1)
    x = _categorical(probs, g)
    return x, {"t": torch.arange(steps + 1) / steps, "theta": torch.stack(thetas)}


def _categorical(probs, generator):
    """One draw from each categorical of probs [..., K] (inverse CDF). -> [...] integers"""
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator)
    return (probs.cumsum(-1)[..., :-1] < u).sum(-1)


def _finite(where: str, out, state):
    if not isinstance(out, torch.Tensor) or out.shape != state.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{where}: the network must return the shape {tuple(state.shape)}; got {got}.")
    check_finite(where, "the network's output", out)
    return out


def string_distribution(patterns=PATTERNS, weights=PATTERN_WEIGHTS, flip: float = FLIP):
    """The exact probabilities of the 2^L binary strings of a mixture of `patterns` (weights summing to
    1), each bit flipped with probability `flip`. String s has bits (s >> (L - 1 - d)) & 1. -> [2^L]"""
    where = "bfn.string_distribution"
    length = len(patterns[0]) if patterns else 0
    if not patterns or any(len(p) != length or set(p) - {"0", "1"} for p in patterns) or length > 16:
        raise ValueError(f"{where}: `patterns` must be strings of 0 and 1 of one length <= 16; got "
                         f"{patterns!r}.")
    if len(weights) != len(patterns) or min(weights) < 0 or abs(sum(weights) - 1) > 1e-9:
        raise ValueError(f"{where}: `weights` must be {len(patterns)} non-negative numbers summing to 1; "
                         f"got {weights!r}.")
    if not 0 <= flip <= 0.5:
        raise ValueError(f"{where}: `flip` must be in [0, 0.5]; got {flip!r}.")
    bits = strings_of(length).double()  # [2^L, L]
    probs = torch.zeros(2 ** length, dtype=torch.float64)
    for pattern, w in zip(patterns, weights):
        same = bits == torch.tensor([float(c) for c in pattern], dtype=torch.float64)
        probs += w * torch.where(same, torch.tensor(1 - flip, dtype=torch.float64), flip).prod(1)
    return probs


def strings_of(length: int):
    """Every binary string of `length` bits, string s in row s, most significant bit first. -> [2^L, L]"""
    check_int("bfn.strings_of", "length", length, low=1, high=16)
    return (torch.arange(2 ** length)[:, None] >> torch.arange(length - 1, -1, -1)) & 1


def total_variation(x, probs) -> float:
    """TV = 1/2 sum_s |q(s) - p(s)| between the empirical distribution of strings x [n, L] and p [2^L]."""
    check_tensor("bfn.total_variation", "x", x, ndim=2, kind="int")
    if probs.shape != (2 ** x.shape[1],):
        raise ValueError(f"bfn.total_variation: `probs` must be of shape [2^L] = ({2 ** x.shape[1]},); got "
                         f"{tuple(probs.shape)}.")
    index = (x.long() << torch.arange(x.shape[1] - 1, -1, -1)).sum(1)
    q = torch.bincount(index, minlength=probs.shape[0]).double() / x.shape[0]
    return 0.5 * (q - probs).abs().sum().item()


def independent_bits(probs):
    """The product of the marginals of p [2^L]: the best model that treats the bits as independent."""
    check_tensor("bfn.independent_bits", "probs", probs, ndim=1, kind="float")
    length = int(math.log2(max(probs.shape[0], 1)))
    if probs.shape[0] != 2 ** length or length < 1:
        raise ValueError(f"bfn.independent_bits: `probs` must have 2^L entries; got {probs.shape[0]}.")
    bits = strings_of(length).to(probs.dtype)
    ones = probs @ bits  # [L], P(bit d = 1)
    return torch.where(bits == 1, ones, 1 - ones).prod(1)


def exact_discrete_network(probs):
    """The ideal discrete output p_O(x_d | theta) of strings with probabilities p [2^L]: the flow's
    evidence in theta (the sum of the y's) has the likelihood prod_d theta_(d, x_d) up to a factor
    that does not depend on x (the update rule), so the posterior is p(x) prod_d theta_(d, x_d).
    -> net(theta [N, L, 2], t [N]) -> logits [N, L, 2]"""
    bits = strings_of(int(math.log2(probs.shape[0]))).double()  # [2^L, L]

    def net(theta, t):
        log_theta = theta.double().clamp_min(1e-300).log()  # [N, L, 2]
        log_lik = log_theta[..., 0] @ (1 - bits).T + log_theta[..., 1] @ bits.T  # [N, 2^L]
        ones = (probs.log() + log_lik).softmax(-1) @ bits  # [N, L]
        return torch.stack([1 - ones, ones], -1).clamp_min(1e-12).log().to(theta.dtype)

    return net


def exact_continuous_network(mixture, sigma_1: float = SIGMA_1):
    """The ideal eps_hat of a Gaussian mixture: mu / gamma is x seen with noise sqrt((1 - gamma) / gamma)
    (the flow), so x_hat is the mixture's ideal denoiser there. -> net(mu [N, D], t [N]) -> [N, D]"""
    def net(mu, t):
        gamma = continuous_gamma(t, sigma_1).clamp_min(1e-12)[:, None]
        noise = ((1 - gamma) / gamma).sqrt()
        x_hat = mixture.denoise((mu / gamma).double(), noise[:, 0].double()).to(mu.dtype)
        return (mu / gamma - x_hat) / noise

    return net


def scaled_ring():
    """The family's ring (8 components, radius 2, std 0.15) scaled by RING_SCALE into [-1, 1]."""
    ring = mixtures.ring()
    return mixtures.GaussianMixture(ring.means * RING_SCALE, ring.stds * RING_SCALE, ring.weights)


def train(net, data, loss, seed: int, steps: int, batch: int, lr: float):
    """Fit `net` on mini-batches of `data` [M, D] with `loss(net, batch, generator=g)` (Adam, lr decaying)."""
    g = torch.Generator().manual_seed(seed)
    return fit(net.parameters(), lambda: loss(net, data[torch.randint(len(data), (batch,), generator=g)],
                                              generator=g),
               steps=steps, lr=lr, seed=seed, optimizer=DecayingAdam, total=steps, desc="BFN")


@functools.lru_cache(maxsize=3)
def trained_discrete(seed: int = 0) -> CategoricalMLP:
    """The discrete BFN trained on TRAINING_SIZE strings of `string_distribution()` drawn with the seed."""
    g = torch.Generator().manual_seed(seed)
    strings = strings_of(LENGTH)[torch.multinomial(string_distribution(), TRAINING_SIZE, True, generator=g)]
    with seeded(seed):
        net = CategoricalMLP(LENGTH)
    train(net, strings, discrete_loss, seed, DISCRETE_STEPS, DISCRETE_BATCH, DISCRETE_LR)
    return net.eval()


@functools.lru_cache(maxsize=3)
def trained_continuous(seed: int = 0) -> EpsilonMLP:
    """The continuous BFN trained on TRAINING_SIZE points of `scaled_ring()` drawn with the seed."""
    data = scaled_ring().sample(TRAINING_SIZE, seed=seed)[0].float()
    with seeded(seed):
        net = EpsilonMLP(2, data_var=data.var(0).mean().item())
    train(net, data, continuous_loss, seed, CONTINUOUS_STEPS, CONTINUOUS_BATCH, CONTINUOUS_LR)
    return net.eval()


def bfn_experiment(seed: int) -> dict:
    """TV of the discrete BFN's strings to the exact distribution, against independent bits; mean
    log-likelihood of the continuous BFN's samples under the true ring, against the data's own."""
    probs, ring = string_distribution(), scaled_ring()
    g = torch.Generator().manual_seed(seed + 1000)
    discrete_net, continuous_net = trained_discrete(seed), trained_continuous(seed)
    with torch.no_grad():
        x, _ = sample_discrete(discrete_net, SAMPLES, LENGTH, SAMPLING_STEPS, seed=seed)
        points, _ = sample_continuous(continuous_net, SAMPLES, 2, SAMPLING_STEPS, seed=seed)
    held_out = strings_of(LENGTH)[torch.multinomial(probs, SAMPLES, True, generator=g)]
    m = {"tv_bfn": total_variation(x, probs), "tv_data": total_variation(held_out, probs),
         "tv_independent": 0.5 * (independent_bits(probs) - probs).abs().sum().item()}
    m["independent_over_bfn"] = m["tv_independent"] / m["tv_bfn"]
    data = ring.sample(TRAINING_SIZE, seed=seed)[0]
    gaussian = data.mean(0) + torch.randn(SAMPLES, 2, generator=g, dtype=torch.float64) @ \
        torch.linalg.cholesky(torch.cov(data.T)).T  # the baseline that matches only two moments
    for name, sample in (("bfn", points.double()), ("data", ring.sample(SAMPLES, seed=seed + 1000)[0]),
                         ("gaussian", gaussian)):
        m[f"ll_{name}"] = ring.log_prob(sample, 1e-6).mean().item()
    m["ll_gap"] = abs(m["ll_data"] - m["ll_bfn"])
    share = torch.bincount(ring.posterior(points.double(), 1e-6).argmax(1), minlength=8) / SAMPLES
    m["component_tv"] = 0.5 * (share - ring.probabilities).abs().sum().item()
    return m


CLAIM = Claim(
    paper="Graves et al. 2023 (BFN)",
    citation="Bayesian Flow Networks (arXiv:2308.07037), sections 4 and 6, Algorithms 3 and 9",
    statement="Bayesian flow networks, which refine the parameters of a factorised input distribution by "
              "Bayesian updates on noisy samples and let a network read them jointly, learn and sample "
              "discrete data (here binary strings) and continuous data (here a 2-D mixture)",
    kind=REPRODUCTION,
    experiment=bfn_experiment,
    thresholds=("tv_bfn <= 0.2", "independent_over_bfn >= 2", "ll_gap <= 0.5", "component_tv <= 0.1"),
    held_on=(0, 1, 2),
    note="Held on seeds 0, 1, 2: total variation 0.09-0.11 over the 256 strings (2000 held-out data "
         "strings score 0.05, the exact network's sampler about as much), 7-8x below the best "
         "independent-bits model; on the ring the samples' mean log-likelihood is 0.12-0.24 nats below "
         "the data's (they spread a little), and the components' shares are within 0.05 in total "
         "variation of the mixture's. The toy's networks are small MLPs with inputs chosen for them "
         "(Fourier features of mu; log theta added to the logits), trained for a few hundred steps; "
         "the paper's image and text results are not attempted.",
    summary=lambda m: (
        f"{SAMPLES} strings of 8 bits in {SAMPLING_STEPS} steps: total variation to the exact distribution "
        f"{m['tv_bfn']:.3f} (held-out data {m['tv_data']:.3f}, independent bits with the exact marginals "
        f"{m['tv_independent']:.3f}, {m['independent_over_bfn']:.1f}x more); {SAMPLES} points on the ring: "
        f"mean log-likelihood {m['ll_bfn']:.2f} against the data's {m['ll_data']:.2f} (a Gaussian fit "
        f"{m['ll_gaussian']:.2f}), components' TV {m['component_tv']:.3f}"),
)
