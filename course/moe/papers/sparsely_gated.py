"""Shazeer et al. 2017, "Outrageously Large Neural Networks": why the sparsely-gated MoE layer needs
its balancing losses (section 4, appendix A, Table 6).

"The gating network tends to converge to a state where it always produces large weights for the same
few experts. This imbalance is self-reinforcing, as the favored experts are trained more rapidly and
thus are selected even more by the gating network." The paper's remedy is two auxiliary losses,

    L_importance = w_importance * CV(Importance(X))^2                               (eqs. 6-7)
    L_load       = w_load * CV(Load(X))^2                                           (eqs. 8-11)

written in `course.moe.losses`. Here the same `MoELayer` (noisy top-k gating, eqs. 3-5; W_g and
W_noise start at zero, as the paper prescribes) is trained twice on a mixture-of-regimes regression,
without and with the losses, and the balance of the trained router is measured the way the paper's
Table 6 does: the coefficient of variation of the load, here the share of the top-k choices that each
expert receives at evaluation (no noise).

The task: tokens drawn from Gaussian blobs on a ring, one regime per blob; in regime b the target is
an affine map of the token, y = x A_b + c_b. One expert per regime solves it, and a linear router
over (x, 1) can separate the blobs, so a balanced routing is both reachable and good.
"""
import torch
from einops import einsum

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import gaussian_mixture, ring_centers
from course.metrics import relative_mse
from course.moe.gating import with_bias
from course.moe.layer import MoELayer
from course.moe.losses import balance_loss, cv_squared
from course.train import fit, one_thread, seeded

OUT_FEATURES = 3  # MoELayer maps D -> D, and the tokens are (x1, x2, 1)


def regime_targets(x, blob, num_regimes: int, seed: int = 0):
    """The mixture-of-regimes target: y = x A_b + c_b with random A_b [2, 3], c_b [3] per regime b.

    x [T, 2], blob [T] -> y [T, 3].
    """
    g = torch.Generator().manual_seed(10_000 + seed)
    A = torch.randn(num_regimes, 2, OUT_FEATURES, generator=g)  # [R, 2, 3]
    c = torch.randn(num_regimes, OUT_FEATURES, generator=g)  # [R, 3]
    return einsum(x, A[blob], "T D, T D O -> T O") + c[blob]


def regime_regression(num_tokens: int, num_regimes: int, std: float = 0.3, seed: int = 0):
    """Tokens from `num_regimes` blobs on a ring and their regime-wise affine targets.

    -> x [T, 2], blob [T], y [T, 3].
    """
    x, blob = gaussian_mixture(num_tokens, ring_centers(num_regimes), std=std, seed=seed)
    return x, blob, regime_targets(x, blob, num_regimes, seed)


def train_moe_regression(x, y, num_experts: int, k: int, w_balance: float, steps: int = 300,
                         hidden: int = 8, lr: float = 0.02, seed: int = 0) -> MoELayer:
    """Full-batch Adam on MSE(MoE(x, 1), y) + balance_loss(w_balance, w_balance) (eqs. 7 and 11).

    x [T, 2], y [T, 3] -> the trained layer, in evaluation mode.
    """
    where = "moe.train_moe_regression"
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_shape(where, "x", x, (x.shape[0], 2), "[T, 2]")
    check_shape(where, "y", y, (x.shape[0], OUT_FEATURES), "[T, 3] with T = x.shape[0]")
    check_int(where, "num_experts", num_experts, low=1)
    check_int(where, "k", k, low=1, high=num_experts)
    if w_balance < 0:
        raise ValueError(f"{where}: `w_balance` must be >= 0; got {w_balance}.")
    with seeded(seed):
        layer = MoELayer(OUT_FEATURES, hidden, num_experts, k)
    noise = torch.Generator().manual_seed(seed)
    tokens = with_bias(x)  # [T, 3]

    def loss():
        out = layer(tokens, generator=noise)
        task = (out.y - y).pow(2).mean()
        return task + balance_loss(out.gating, w_balance, w_balance) if w_balance > 0 else task

    fit(layer.parameters(), loss, steps, lr, seed=seed, desc="MoE regression")
    return layer.eval()


@torch.no_grad()
def load_fractions(layer: MoELayer, x):
    """Share of the top-k choices that each expert receives at evaluation (no noise). -> [E]"""
    gating = layer.eval()(with_bias(x)).gating
    counts = torch.bincount(gating.expert_index.flatten(), minlength=layer.num_experts).float()
    return counts / counts.sum()


def load_cv(fractions) -> float:
    """Coefficient of variation (std / mean over experts) of the load, as in the paper's Table 6."""
    return cv_squared(torch.as_tensor(fractions, dtype=torch.float32)).sqrt().item()


@torch.no_grad()
def task_error(layer: MoELayer, x, y) -> float:
    """Task loss as a fraction of the target's variance (0 is perfect, 1 predicts the mean)."""
    return relative_mse(layer.eval()(with_bias(x)).y, y)


def train_router_2d(tokens, blob, num_experts: int, k: int, w_balance: float, seed: int = 0):
    """Router weights of a small MoE trained on a blob-wise regression of 2-D tokens (for the widget).

    The target of blob b is the affine map of `regime_targets`; the layer sees (x1, x2, 1), so the
    weights read directly as a router over `with_bias(tokens)`. With k = 1 the task loss gives the
    router no gradient (a softmax over one kept logit is always 1), so only the balance loss moves it.
    tokens [T, 2], blob [T] -> (w_gate [3, E], w_noise [3, E]), detached.
    """
    where = "moe.train_router_2d"
    check_tensor(where, "tokens", tokens, ndim=2, kind="float")
    check_shape(where, "tokens", tokens, (tokens.shape[0], 2), "[T, 2]")
    check_tensor(where, "blob", blob, ndim=1, kind="int")
    check_shape(where, "blob", blob, (tokens.shape[0],), "[T] with T = tokens.shape[0]")
    y = regime_targets(tokens, blob.long(), int(blob.max()) + 1, seed)
    with one_thread():
        layer = train_moe_regression(tokens, y, num_experts, k, w_balance, steps=100, hidden=16,
                                     lr=0.03, seed=seed)
    return layer.w_gate.detach().clone(), layer.w_noise.detach().clone()


def balancing_experiment(seed: int, num_experts: int = 8, k: int = 2, num_tokens: int = 512,
                         w_balance: float = 1.0) -> dict:
    """The same MoE layer trained without and with the losses; the balance of each trained router."""
    x, _, y = regime_regression(num_tokens, num_experts, seed=seed)
    runs = {}
    for name, w in (("without", 0.0), ("with", w_balance)):
        layer = train_moe_regression(x, y, num_experts, k, w, seed=seed)
        fractions = load_fractions(layer, x)
        runs[name] = dict(cv=load_cv(fractions), mse=task_error(layer, x, y),
                          idle=int((fractions < 0.01).sum()),
                          peak=(fractions.max() * num_experts).item(), fractions=fractions.tolist())
    measured = {f"{key}_{name}": value for name, run in runs.items() for key, value in run.items()}
    measured["cv_ratio"] = runs["without"]["cv"] / max(runs["with"]["cv"], 1e-12)
    measured["mse_ratio"] = runs["with"]["mse"] / runs["without"]["mse"]
    return measured


CLAIM = Claim(
    paper="Shazeer et al. 2017",
    citation="Outrageously Large Neural Networks: The Sparsely-Gated Mixture-of-Experts Layer "
             "(arXiv:1701.06538), section 4 and Table 6",
    statement="without the importance and load losses the router favours a few experts; the losses "
              "cut the coefficient of variation of the load by a large factor, at little cost to "
              "the task",
    kind=REPRODUCTION,
    experiment=balancing_experiment,
    thresholds=("cv_ratio >= 5", "idle_with == 0", "mse_ratio <= 1.5"),
    summary=lambda m: (
        f"8 experts, top-2: CV of the load {m['cv_without']:.2g} without the losses "
        f"({m['idle_without']} experts idle, the busiest at {m['peak_without']:.2g}x the mean) vs "
        f"{m['cv_with']:.2g} with them, {m['cv_ratio']:.2g}x lower; task loss (MSE / Var y) "
        f"{m['mse_without']:.2g} vs {m['mse_with']:.2g}"),
)
