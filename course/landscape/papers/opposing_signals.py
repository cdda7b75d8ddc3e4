"""Outliers with opposing signals, and the edge of stability, on a toy with a planted "sky" feature.

Rosenfeld and Risteski 2023, "Outliers with Opposing Signals Have an Outsized Effect on Neural
Network Optimization" (arXiv:2311.04163). Paired groups of outliers carry a large feature (the sky
behind planes, and behind some other class) that points to opposite labels; early training balances
the two groups in a narrow valley, the sharpening that follows makes their losses oscillate, one
group high while the other is low, and the opposing signals are a cause of progressive sharpening
and of the edge of stability (Cohen et al. 2021, arXiv:2103.00065: under full-batch gradient descent
at step size eta the sharpness rises to about 2 / eta and hovers there). The paper finds the groups
by the training points whose loss changes most between consecutive steps.

The toy (`sky_data`): 8 features; the bulk of each of 3 classes is its class coordinate plus noise.
Two groups of outliers, one of class 0 and one of class 1, carry a weak class signal and a large
value of the last ("sky") feature, the same in both: a signal that says class 0 for one group and
class 1 for the other. A (8, 32, 32, 3) MLP trains by full-batch gradient descent at eta; the
sharpness is traced every few steps (`curvature.sharpness_trace`), the per-example losses at every
step. The same run without the outliers is the baseline.
"""
import functools

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.landscape.curvature import sharpness_trace
from course.landscape.models import flatten, mlp
from course.train import fit

FEATURES, CLASSES = 8, 3
WIDTHS = (FEATURES, 32, 32, CLASSES)
BULK, PER_GROUP = 240, 8  # examples of the bulk, and of each opposing group
NOISE, CORE, SKY = 0.4, 0.5, 8.0  # bulk noise; class signal of an outlier; its sky feature
ETA, STEPS, EVERY = 0.4, 300, 10  # full-batch GD step size, steps, sharpness every EVERY steps
EDGE_FRACTION = 0.9  # the edge is reached when the sharpness first passes 0.9 * 2 / eta


def sky_data(seed: int, bulk: int = BULK, per_group: int = PER_GROUP, sky: float = SKY):
    """x [N, 8], labels [N], group [N] (0 bulk, 1 the sky outliers of class 0, 2 those of class 1),
    N = bulk + 2 per_group; the outliers are the last 2 per_group rows."""
    check_int("opposing_signals.sky_data", "bulk", bulk, low=1)
    check_int("opposing_signals.sky_data", "per_group", per_group, low=1)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (bulk,), generator=g)
    x = NOISE * torch.randn(bulk, FEATURES, generator=g)
    x[torch.arange(bulk), y] += 1.0
    y_out = torch.arange(2).repeat_interleave(per_group)  # class 0, then class 1
    x_out = NOISE * torch.randn(2 * per_group, FEATURES, generator=g)
    x_out[torch.arange(2 * per_group), y_out] += CORE
    x_out[:, -1] += sky  # the opposing signal: one feature, two labels
    group = torch.cat([torch.zeros(bulk, dtype=torch.long), 1 + y_out])
    return torch.cat([x, x_out]), torch.cat([y, y_out]), group


def gd_run(x, labels, eta: float = ETA, steps: int = STEPS, every: int = EVERY, seed: int = 0):
    """Full-batch gradient descent on the MLP through `course.train.fit`.

    -> per-example losses [steps, N] (before each step's update), thetas [steps // every + 1, P]
    (every `every` steps and the last) and the steps at which they were taken [steps // every + 1]."""
    check_tensor("opposing_signals.gd_run", "x", x, ndim=2, kind="float")
    check_int("opposing_signals.gd_run", "every", every, low=1)
    model = mlp(WIDTHS, seed=seed)
    losses, thetas, at = [], [], []

    def loss():
        per_example = F.cross_entropy(model(x), labels, reduction="none")
        if len(losses) % every == 0:
            thetas.append(flatten(model))
            at.append(len(losses))
        losses.append(per_example.detach())
        return per_example.mean()

    fit(model.parameters(), loss, steps, eta, seed=seed, optimizer=torch.optim.SGD)
    thetas.append(flatten(model))
    at.append(steps)
    return torch.stack(losses), torch.stack(thetas), torch.tensor(at)


def loss_movement(per_example) -> torch.Tensor:
    """How much each example's loss moves [N]: sum over t of |l_i(t+1) - l_i(t)| for per-example
    losses [T, N] (the paper: the points whose loss changes most between consecutive steps)."""
    check_tensor("opposing_signals.loss_movement", "per_example", per_example, ndim=2, kind="float")
    if per_example.shape[0] < 2:
        raise ValueError("opposing_signals.loss_movement: `per_example` [T, N] needs T >= 2 steps; "
                         f"got shape {tuple(per_example.shape)}.")
    return per_example.diff(dim=0).abs().sum(0)


def opposing_groups(per_example, k: int):
    """The two opposing groups among the k examples whose loss moves most: split by the sign of the
    leading eigenvector of the correlation matrix of their step-to-step loss changes, so that each
    group's losses rise together while the other's fall. -> (indices of one, of the other)."""
    check_int("opposing_signals.opposing_groups", "k", k, low=2, high=per_example.shape[-1])
    top = loss_movement(per_example).topk(k).indices
    changes = per_example[:, top].diff(dim=0).double()  # [T-1, k]
    changes = changes - changes.mean(0)
    changes = changes / changes.norm(dim=0).clamp_min(1e-12)
    leading = torch.linalg.eigh(changes.T @ changes)[1][:, -1]  # [k]
    return top[leading >= 0], top[leading < 0]


def group_loss(per_example, group, which: int) -> torch.Tensor:
    """The mean loss of one group over training [T]."""
    return per_example[:, group == which].mean(1)


def steps_to_edge(trace, at, eta: float, steps: int) -> int:
    """The first recorded step at which the sharpness passes EDGE_FRACTION * 2 / eta (`steps` if never)."""
    above = (trace >= EDGE_FRACTION * 2 / eta).nonzero()
    return int(at[above[0, 0]]) if len(above) else steps


@functools.lru_cache(maxsize=6)
def traced_run(seed: int, with_outliers: bool = True):
    """(x, labels, group, per-example losses [T, N], sharpness trace [K], steps of the trace [K])."""
    x, labels, group = sky_data(seed)
    if not with_outliers:
        keep = group == 0
        x, labels, group = x[keep], labels[keep], group[keep]
    per_example, thetas, at = gd_run(x, labels, seed=seed)
    return x, labels, group, per_example, sharpness_trace(x, labels, thetas, WIDTHS), at


def opposing_signals_experiment(seed: int) -> dict:
    """The edge-of-stability trace with the outliers, how the groups' losses move, whether the
    loss-movement ranking finds the planted groups, and how fast the run without them sharpens."""
    x, labels, group, per_example, trace, at = traced_run(seed)
    late = at >= STEPS // 2
    m = {"two_over_eta": 2 / ETA, "max_sharpness": float(trace.max()),
         "edge_ratio": float(trace[late].median()) * ETA / 2}
    half = STEPS // 2  # the groups' step-to-step changes in the second half of training
    a, b = (group_loss(per_example, group, i)[half:].diff() for i in (1, 2))
    m["group_change_correlation"] = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    k = 2 * PER_GROUP
    first, second = opposing_groups(per_example, k)
    m["found_precision"] = float((group[torch.cat([first, second])] > 0).float().mean())
    right = sum(max(int((group[g] == 1).sum()), int((group[g] == 2).sum())) for g in (first, second))
    m["split_purity"] = right / k
    m["steps_to_edge"] = steps_to_edge(trace, at, ETA, STEPS)
    *_, trace0, at0 = traced_run(seed, with_outliers=False)
    m["steps_to_edge_without"] = steps_to_edge(trace0, at0, ETA, STEPS)
    m["max_sharpness_without"] = float(trace0.max())
    m["sharpening_speedup"] = m["steps_to_edge_without"] / max(m["steps_to_edge"], 1)
    return m


CLAIM = Claim(
    paper="Rosenfeld and Risteski 2023",
    citation="Outliers with Opposing Signals Have an Outsized Effect on Neural Network Optimization "
             "(arXiv:2311.04163), abstract and the sections on finding the groups and on progressive "
             "sharpening; the edge of stability of Cohen et al. 2021 (arXiv:2103.00065)",
    statement="paired groups of outliers with a strong opposing signal drive progressive sharpening to "
              "the edge of stability (sharpness about 2 / eta under gradient descent), their losses "
              "oscillate, one group's rising as the other's falls, and they are found as the training "
              "points whose loss changes most between steps",
    kind=REPRODUCTION,
    experiment=opposing_signals_experiment,
    thresholds=("edge_ratio >= 0.8", "edge_ratio <= 1.25", "group_change_correlation <= -0.5",
                "found_precision >= 0.6", "sharpening_speedup >= 2"),
    note="The toy and eta were designed, and the thresholds set, on development seeds 10-12 before "
         "seeds 0-2 ran. The opposing signal is one planted coordinate, not a learned image feature; "
         "eta = 0.4 puts 2 / eta = 5 above the sharpness the bulk alone reaches in 300 steps (2.5-2.8 "
         "on seeds 0-2), so the baseline never reaches the edge and its speed-up is a lower bound. "
         "The loss-movement ranking also picks up bulk points near the class boundaries (precision "
         "62-88%); every planted outlier it finds is put with its own group by the split.",
    summary=lambda m: (
        f"GD at eta = {ETA:g}: the sharpness reaches {EDGE_FRACTION:g} x 2/eta at step "
        f"{m['steps_to_edge']} and hovers at {m['edge_ratio']:.2f} x 2/eta (median of the second half); "
        f"without the {2 * PER_GROUP} outliers it gets there at step {m['steps_to_edge_without']} "
        f"({m['sharpening_speedup']:.1f}x later; {STEPS} = never). The two groups' loss changes "
        f"correlate at {m['group_change_correlation']:.2f}; {m['found_precision']:.0%} of the "
        f"{2 * PER_GROUP} points whose loss moves most are the planted outliers"),
)
