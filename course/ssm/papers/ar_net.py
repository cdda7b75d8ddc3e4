"""AR-Net: an auto-regressive process fitted by a one-layer linear net with a sparsity regulariser.

Triebe, Laptev and Rajagopal 2019, "AR-Net: A simple Auto-Regressive Neural Network for time-series"
(arXiv:1911.12436), section 3. An AR(p) process y_t = sum_{i=1..p} a_i y_{t-i} + e_t is fitted by a
linear layer from the p lagged values to y_t, trained by SGD on the squared error, instead of the
least-squares solve of Classic-AR. Without regularisation the two find the same coefficients. When
the order p is overestimated, AR-Net adds lambda R(theta) to the loss (section 3.2),

    R(theta) = (1 / p) sum_i [ 2 / (1 + exp(-c1 |theta_i|^(1 / c2))) - 1 ],   c1 = c2 = 3,

a penalty that rises steeply near 0 and saturates for large weights, so small spurious coefficients
are pushed to zero while the true ones are barely shrunk: the order is found from the data.

Here (`ar_net_experiment`, a reproduction) a sparse stationary AR process of order TRUE_ORDER (three
non-zero lags) is drawn; at the true order AR-Net (no regulariser) is compared with least squares, and
at an overestimated order P_FIT the regularised AR-Net is compared with least squares on the relative
coefficient error and on the order each recovers.
"""
import torch

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.train import DecayingAdam, fit, seeded

TRUE_ORDER, NONZERO, P_FIT, SAMPLES, NOISE = 8, 3, 32, 600, 1.0
LAMBDA, C1, C2 = 0.1, 3.0, 3.0
STEPS, LR = 400, 0.02
ORDER_TOLERANCE = 0.05  # a coefficient counts as non-zero above this


def sparse_ar_coefficients(order: int, nonzero: int, seed: int) -> torch.Tensor:
    """a [order] (float64): `nonzero` lags, the last one always `order`, with |a_i| in [0.2, 0.5] and a
    random sign, redrawn until the process is stationary (companion matrix spectral radius < 0.95)."""
    check_int("sparse_ar_coefficients", "order", order, low=1)
    check_int("sparse_ar_coefficients", "nonzero", nonzero, low=1, high=order)
    g = torch.Generator().manual_seed(seed)
    while True:
        lags = torch.cat([torch.randperm(order - 1, generator=g)[:nonzero - 1], torch.tensor([order - 1])])
        a = torch.zeros(order, dtype=torch.float64)
        sign = torch.randint(2, (nonzero,), generator=g).double() * 2 - 1
        a[lags] = sign * (0.2 + 0.3 * torch.rand(nonzero, generator=g, dtype=torch.float64))
        companion = torch.diag(torch.ones(order - 1, dtype=torch.float64), -1)
        companion[0] = a
        if torch.linalg.eigvals(companion).abs().max() < 0.95:
            return a


def ar_process(coefficients: torch.Tensor, n: int, noise: float = NOISE, seed: int = 0,
               burn_in: int = 200) -> torch.Tensor:
    """y [n] (float64): y_t = sum_i a_i y_{t-i} + noise * e_t, e_t ~ N(0, 1), after `burn_in` steps."""
    check_tensor("ar_process", "coefficients", coefficients, ndim=1, kind="float")
    check_int("ar_process", "n", n, low=1)
    g = torch.Generator().manual_seed(seed)
    p = coefficients.numel()
    e = noise * torch.randn(n + burn_in, generator=g, dtype=torch.float64)
    y = torch.zeros(n + burn_in + p, dtype=torch.float64)
    a = coefficients.double().flip(0)  # a_p .. a_1, to dot with y_{t-p} .. y_{t-1}
    for t in range(n + burn_in):
        y[t + p] = a @ y[t:t + p] + e[t]
    return y[-n:]


def lagged(series: torch.Tensor, p: int) -> tuple:
    """The regression of y_t on its p lags: X [n - p, p] with X[:, i] = y_{t-1-i}, and y [n - p]."""
    check_tensor("lagged", "series", series, ndim=1, kind="float")
    check_int("lagged", "p", p, low=1, high=series.numel() - 1)
    windows = series.unfold(0, p + 1, 1)  # [n - p, p + 1], oldest first
    return windows[:, :p].flip(1), windows[:, p]


def least_squares_ar(series: torch.Tensor, p: int) -> torch.Tensor:
    """Classic-AR: the least-squares AR(p) coefficients [p] (section 2)."""
    X, y = lagged(series, p)
    return torch.linalg.lstsq(X, y[:, None]).solution[:, 0]


def sparsity_regulariser(theta: torch.Tensor, c1: float = C1, c2: float = C2) -> torch.Tensor:
    """R(theta) of section 3.2: mean over the p weights of 2 / (1 + exp(-c1 |theta|^(1/c2))) - 1."""
    check_tensor("sparsity_regulariser", "theta", theta, ndim=1, kind="float")
    return (2 / (1 + torch.exp(-c1 * theta.abs().pow(1 / c2))) - 1).mean()


def ar_net(series: torch.Tensor, p: int, lam: float = 0.0, steps: int = STEPS, lr: float = LR,
           seed: int = 0) -> torch.Tensor:
    """AR-Net: a linear layer [p] -> 1 (no bias) trained with Adam on the full batch of lag windows,
    loss MSE + lam R(theta). Returns the learned coefficients [p] (float64)."""
    check_finite("ar_net", "series", series)
    if not lam >= 0:
        raise ValueError(f"ar_net: `lam` must be >= 0; got {lam}.")
    X, y = lagged(series.float(), p)
    with seeded(seed):
        theta = (0.01 * torch.randn(p)).requires_grad_()

    def loss():
        mse = (X @ theta - y).pow(2).mean()
        return mse + lam * sparsity_regulariser(theta) if lam > 0 else mse

    fit([theta], loss, steps, lr, seed=seed, optimizer=DecayingAdam, total=steps)
    return theta.detach().double()


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """||estimate - truth|| / ||truth||, the truth zero-padded to the estimate's length."""
    padded = torch.zeros(estimate.numel(), dtype=torch.float64)
    padded[:truth.numel()] = truth
    return float((estimate - padded).norm() / truth.norm())


def estimated_order(coefficients: torch.Tensor, tolerance: float = ORDER_TOLERANCE) -> int:
    """The largest lag whose |coefficient| exceeds `tolerance` (0 if none)."""
    big = (coefficients.abs() > tolerance).nonzero()
    return int(big.max()) + 1 if big.numel() else 0


def ar_net_experiment(seed: int) -> dict:
    """AR-Net against least squares at the true order and at an overestimated one."""
    check_int("ar_net_experiment", "seed", seed, low=0)
    truth = sparse_ar_coefficients(TRUE_ORDER, NONZERO, seed)
    y = ar_process(truth, SAMPLES, seed=seed)
    ls_true, net_true = least_squares_ar(y, TRUE_ORDER), ar_net(y, TRUE_ORDER, seed=seed)
    ls_over, sparse_over = least_squares_ar(y, P_FIT), ar_net(y, P_FIT, LAMBDA, seed=seed)
    ls_error, sparse_error = relative_error(ls_over, truth), relative_error(sparse_over, truth)
    return {
        "net_vs_ls_true_order": float((net_true - ls_true).abs().max()),
        "ls_error_true_order": relative_error(ls_true, truth),
        "net_error_true_order": relative_error(net_true, truth),
        "ls_error_overestimated": ls_error,
        "sparse_error_overestimated": sparse_error,
        "sparse_over_ls_error": sparse_error / ls_error,
        "ls_order_error": float(abs(estimated_order(ls_over) - TRUE_ORDER)),
        "sparse_order_error": float(abs(estimated_order(sparse_over) - TRUE_ORDER)),
    }


CLAIM = Claim(
    paper="Triebe et al. 2019",
    citation="AR-Net: A simple Auto-Regressive Neural Network for time-series (arXiv:1911.12436), "
             "sections 3 and 4 (AR-Net learns the Classic-AR coefficients; the sparsity regulariser "
             "finds them when the order is overestimated)",
    statement="AR-Net learns the same AR coefficients as least squares at the true order, and with its "
              "sparsity regulariser recovers the coefficients and the order better than least squares "
              "when the order is overestimated",
    kind=REPRODUCTION,
    experiment=ar_net_experiment,
    thresholds=("net_vs_ls_true_order <= 0.02", "sparse_over_ls_error <= 0.7", "sparse_order_error == 0"),
    summary=lambda m: (
        f"at the true order AR-Net is within {m['net_vs_ls_true_order']:.2g} of least squares; at order "
        f"{P_FIT} (true {TRUE_ORDER}) the coefficient error is {m['sparse_error_overestimated']:.3f} with "
        f"the regulariser against {m['ls_error_overestimated']:.3f} for least squares (ratio "
        f"{m['sparse_over_ls_error']:.2f}); order off by {m['sparse_order_error']:.0f} against "
        f"{m['ls_order_error']:.0f}"),
    held_on=(),
    note=f"Not reproduced here: at lambda = {LAMBDA} (set once, before the numbers were seen) the "
         f"regulariser, averaged over the {P_FIT} weights, is weak against the squared error of a "
         f"noise-variance-1 process; the error ratio was 0.86 to 0.94 and spurious lags stayed above "
         f"{ORDER_TOLERANCE}. "
         f"{SAMPLES} samples of a sparse AR({TRUE_ORDER}) with {NONZERO} non-zero lags, noise std {NOISE}; "
         f"Adam replaces the paper's SGD.",
)
