"""STanHop's Generalized Sparse Hopfield (GSH) retrieval against the dense one, on windows of time series.

Wu et al. 2023, "STanHop: Sparse Tandem Hopfield Model for Memory-Enhanced Time Series Prediction"
(arXiv:2312.17346), its method section. The GSH model puts alpha-entmax in the Hopfield update, with
alpha in [1, 2] (alpha = 1 is softmax, Ramsauer et al. 2020; alpha = 2 is sparsemax, Hu et
al. 2023, "On Sparse Modern Hopfield Model", arXiv:2309.12673):

    update    xi_new = X^T alpha-entmax(beta X xi)
    energy    H(xi) = -Psi*_alpha(beta X xi) / beta + 1/2 xi . xi
with Psi_alpha(p) = (sum_j p_j^alpha - 1) / (alpha (alpha - 1)) the negative Tsallis entropy and Psi* its
convex conjugate, whose gradient is alpha-entmax (Peters, Niculae and Martins 2019). The update is
the concave-convex procedure on H, so H never increases. The papers' retrieval-error bounds (Hu et al.'s
and STanHop's for the GSH model) say the sparse model's error is at most the dense one's: entmax puts
exactly zero weight on stored patterns whose score lies far enough below the best, so the error depends
on the few patterns in the support, not on how many similar ones are stored (M).

The toy (`stanhop_experiment`, a reproduction): M windows of D steps cut from a few synthetic series
(each a sum of sinusoids plus noise), so that many stored patterns are similar (the same series, nearby
offsets); queries are stored windows with added noise; the retrieval error is the distance of one update
to the stored window, for alpha = 1 (softmax), 1.5 and 2 (sparsemax) at the same beta. STanHop-Net's
tandem layers (temporal then cross-series GSH with learned projections) and its memory modules are not
built: the claim measured is the retrieval-error one that the tandem layers rest on.
"""
import torch

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.hopfield.modern import check_beta, check_retrieve_args
from course.hopfield.sparse import sparse_retrieve, support_size
from course.train import one_thread

SERIES, WINDOW, STORED, QUERIES = 4, 32, 256, 64  # series (clusters), D, M, N
BETA, QUERY_NOISE, SERIES_NOISE = 32.0, 0.1, 0.1  # beta for unit-norm windows; noise per step
ALPHAS = (1.0, 1.5, 2.0)
BISECTIONS = 40  # halvings of tau's bracket in alpha_entmax: 2^-40 of a bracket of width < 1


def check_alpha(where: str, alpha) -> float:
    """alpha, the entmax exponent, as a float in [1, 2]."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 1 <= alpha <= 2:
        raise ValueError(f"{where}: `alpha` must be a number in [1, 2] (1: softmax, 2: sparsemax); "
                         f"got {alpha!r}.")
    return float(alpha)


def alpha_entmax(z, alpha: float, dim: int = -1):
    """alpha-entmax(z) = argmax_{p in simplex} p . z - Psi_alpha(p) (Peters et al. 2019; STanHop's GSH
    model), p_j = [(alpha - 1) z_j - tau]_+^(1 / (alpha - 1)) with tau found by bisection so that the
    p_j sum to 1 (the bisection of Blondel et al. 2020). alpha = 1 is softmax. z [..., M] -> [..., M]"""
    check_tensor("stanhop.alpha_entmax", "z", z, kind="float")
    alpha = check_alpha("stanhop.alpha_entmax", alpha)
    if alpha == 1.0:
        return z.softmax(dim)
    moved = z.movedim(dim, -1).double()
    s = (alpha - 1) * moved
    top = s.amax(-1, keepdim=True)
    # sum_j [s_j - tau]_+^(1/(alpha-1)) is >= 1 at tau = top - 1 and <= 1 at tau = top - M^(1 - alpha)
    low = top - 1
    width = 1 - moved.shape[-1] ** (1 - alpha)
    for _ in range(BISECTIONS):
        width = width / 2
        tau = low + width
        mass = (s - tau).clamp_(min=0).pow_(1 / (alpha - 1)).sum(-1, keepdim=True)
        low = torch.where(mass >= 1, tau, low)
    p = (s - low).clamp(min=0).pow(1 / (alpha - 1))
    p = p / p.sum(-1, keepdim=True)
    return p.to(z.dtype).movedim(-1, dim)


def tsallis_conjugate(z, alpha: float):
    """Psi*_alpha(z) = <p*, z> - Psi_alpha(p*) with p* = alpha-entmax(z), over the last dim; for
    alpha = 1 the limit logsumexp(z). [..., M] -> [...]"""
    alpha = check_alpha("stanhop.tsallis_conjugate", alpha)
    if alpha == 1.0:
        return torch.logsumexp(z, -1)
    p = alpha_entmax(z, alpha)
    return (p * z).sum(-1) - (p.pow(alpha).sum(-1) - 1) / (alpha * (alpha - 1))


def gsh_energy(states, patterns, beta, alpha: float):
    """H(xi) = -Psi*_alpha(beta X xi) / beta + 1/2 xi . xi (STanHop's GSH energy). states [N, D] (or
    [D]), patterns [M, D] -> [N] (or a scalar)"""
    beta = check_beta("stanhop.gsh_energy", beta)
    return -tsallis_conjugate(beta * (states @ patterns.T), alpha) / beta + 0.5 * (states * states).sum(-1)


def gsh_retrieve(queries, patterns, beta, alpha: float, steps: int = 1):
    """`steps` GSH updates xi <- alpha-entmax(beta xi X^T) X (STanHop's GSH update). queries [N, D],
    patterns [M, D] -> [N, D]"""
    beta = check_retrieve_args("stanhop.gsh_retrieve", queries, patterns, beta, steps)
    alpha = check_alpha("stanhop.gsh_retrieve", alpha)
    xi = queries
    for _ in range(steps):
        xi = alpha_entmax(beta * (xi @ patterns.T), alpha, dim=1) @ patterns
    return xi


def unit_rows(x):
    """Each row centred and scaled to norm 1 (windows compared by shape, not level). [N, D] -> [N, D]"""
    x = x - x.mean(1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def series_windows(m: int, d: int, series: int, noise: float, generator: torch.Generator):
    """m windows of d steps, each cut at a random offset from one of `series` series; a series is a sum
    of two sinusoids with random periods (6 to 24 steps) and phases, plus Gaussian noise per step.
    -> windows [m, d] (centred, unit norm), the series of each [m]"""
    check_int("stanhop.series_windows", "m", m, low=1)
    check_int("stanhop.series_windows", "d", d, low=2)
    check_int("stanhop.series_windows", "series", series, low=1)
    periods = 6 + 18 * torch.rand(series, 2, generator=generator)
    phases = 2 * torch.pi * torch.rand(series, 2, generator=generator)
    amplitudes = 0.5 + torch.rand(series, 2, generator=generator)
    which = torch.randint(series, (m,), generator=generator)
    start = torch.randint(0, 4 * d, (m,), generator=generator).float()
    t = start[:, None] + torch.arange(d, dtype=torch.float32)[None, :]  # [m, d]
    waves = amplitudes[which, :, None] * torch.sin(2 * torch.pi * t[:, None, :] / periods[which, :, None]
                                                  + phases[which, :, None])  # [m, 2, d]
    x = waves.sum(1) + noise * torch.randn(m, d, generator=generator)
    return unit_rows(x), which


def retrieval_error(retrieved, targets):
    """Mean distance |T(xi) - x_mu| of one-step retrievals to their stored windows. [N, D] x2 -> float"""
    return (retrieved - targets).norm(dim=1).mean().item()


@one_thread()
def stanhop_experiment(seed: int) -> dict:
    """Retrieval error of one update at the same beta for alpha = 1, 1.5, 2; support sizes; a beta sweep."""
    g = torch.Generator().manual_seed(seed)
    patterns, _ = series_windows(STORED, WINDOW, SERIES, SERIES_NOISE, g)
    picked = torch.randperm(STORED, generator=g)[:QUERIES]
    targets = patterns[picked]
    queries = unit_rows(targets + QUERY_NOISE * torch.randn(QUERIES, WINDOW, generator=g))
    out = {}
    for alpha in ALPHAS:
        name = {1.0: "softmax", 1.5: "entmax15", 2.0: "sparsemax"}[alpha]
        out[f"{name}_error"] = retrieval_error(gsh_retrieve(queries, patterns, BETA, alpha), targets)
    out["sparsemax_library_gap"] = (sparse_retrieve(queries, patterns, BETA)
                                    - gsh_retrieve(queries, patterns, BETA, 2.0)).abs().max().item()
    out["support_mean"] = support_size(queries, patterns, BETA).float().mean().item()
    out["support_fraction"] = out["support_mean"] / STORED
    out["error_ratio"] = out["sparsemax_error"] / out["softmax_error"]
    out["monotone_in_alpha"] = float(out["sparsemax_error"] <= out["entmax15_error"] <= out["softmax_error"])
    for beta in (4.0, 128.0):  # retrieval error against sparsity: small and large beta
        out[f"softmax_error_beta{beta:g}"] = retrieval_error(gsh_retrieve(queries, patterns, beta, 1.0),
                                                             targets)
        out[f"sparsemax_error_beta{beta:g}"] = retrieval_error(sparse_retrieve(queries, patterns, beta),
                                                               targets)
        out[f"support_mean_beta{beta:g}"] = support_size(queries, patterns, beta).float().mean().item()
    out["query_error"] = retrieval_error(queries, targets)
    return out


CLAIM = Claim(
    paper="Wu et al. 2023",
    citation="STanHop: Sparse Tandem Hopfield Model for Memory-Enhanced Time Series Prediction "
             "(arXiv:2312.17346): the generalized sparse Hopfield model and its retrieval-error bound "
             "(after Hu et al. 2023, On Sparse Modern Hopfield Model, arXiv:2309.12673)",
    statement="the generalized sparse Hopfield update (alpha-entmax, alpha in (1, 2]) retrieves a stored "
              "pattern with a smaller error than the dense softmax update at the same beta, the more so "
              "the sparser, because its support holds only the few closest of many similar patterns",
    kind=REPRODUCTION,
    experiment=stanhop_experiment,
    thresholds=("error_ratio <= 0.5", "monotone_in_alpha == 1", "support_fraction <= 0.1"),
    summary=lambda m: (
        f"one-step retrieval error of noisy time-series windows ({STORED} stored, beta = {BETA:g}): "
        f"softmax {m['softmax_error']:.3f}, 1.5-entmax {m['entmax15_error']:.3f}, sparsemax "
        f"{m['sparsemax_error']:.3f} (ratio {m['error_ratio']:.2f}; the query itself is "
        f"{m['query_error']:.3f} away); sparsemax support {m['support_mean']:.1f} of {STORED} patterns"),
    held_on=(),
    note="Holds on no seed. Sparsemax's error is below softmax's on every seed (0.069 against 0.101, 0.069 "
         "against 0.110, 0.083 against 0.116), falls with alpha as the theory says, and its support is "
         "about 2 of 256 windows; but the ratio, 0.69, 0.62 and 0.71, misses the 0.5 set in advance: at "
         "beta = 32 softmax's leak onto the many similar windows is already small, and both errors come "
         "mostly from the one or two nearest windows (neighbouring offsets of the same series), which "
         "sparsemax keeps in its support too. At beta = 4 the ratio is 0.26 to 0.30 (measured, not the "
         "criterion). Windows of synthetic sums of sinusoids, one update, no learned projections; "
         "STanHop-Net's tandem temporal / cross-series layers, its Plug-and-Play and Tune-and-Play memories "
         "and its forecasting benchmarks are not reproduced.",
)
