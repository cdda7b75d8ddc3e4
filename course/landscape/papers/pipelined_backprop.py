"""Fine-grained pipelined backpropagation at batch size one, simulated stage by stage, and its two fixes.

Kosson, Chiley, Venigalla, Hestness and Köster 2021, "Pipelined Backpropagation at Scale: Training
Large Models without Batches" (arXiv:2003.11666, MLSys 2021). In fine-grained Pipelined Backpropagation
(PB) every layer is a pipeline stage and one sample enters the pipeline per step; each stage does one
forward (of a newer sample) and one backward (of an older one) per step and updates its weights at
once, without waiting for a batch. With S stages, the sample that stage s (1 = first)
forwards at step t comes back through it at step t + 2(S - s): the update of stage s applies a gradient
computed from a forward pass with its weights 2(S - s) updates old (the deepest stage is fresh, the
first is the stalest), and the backward pass uses the current weights, not those of the forward
(weight inconsistency). `pipelined_sgd` simulates exactly that: per-stage queues of stored inputs, the
error handed one stage back per step.

The paper's two fixes for momentum SGD (velocity v, v <- m v + g, w <- w - eta v), for a stage of delay D:

- Spike Compensation (SC): w <- w - eta (a v + b g) with a = m^D, b = (1 - m^D) / (1 - m): a delayed
  gradient gets at once the weight that momentum would have given it over the D steps it missed
  (`spike_coefficients`), and the rest of its momentum tail as without delay;
- Linear Weight Prediction (LWP): the forward pass uses the weights predicted D steps ahead from the
  velocity, w_hat = w - eta D v (`predicted_weights`), so the gradient is computed near the weights it
  will be applied to.

Combined (PB + SC + LWP), the forward pass uses the predicted weights and the update SC's (a, b); the
paper's exact combined form was not available offline, so this is the plain composition of the two.

The toy (`pipelined_backprop_experiment`): six 2-D Gaussian blobs on a ring, one class each, a fresh
sample every step (so the running loss is a test loss), and an MLP of four layers; the learning rate
(0.003) and momentum (0.9) are plain SGD's best at batch size one here (0.001 and 0.01 are worse). With
one stage per layer the delays (6, 4, 2, 0) cost this toy almost nothing (late loss 0.036 -> 0.048,
0.109 -> 0.113, 0.091 -> 0.115 on seeds 0, 1, 2), so the pipeline is made three steps per layer deep
(`HOP`: delays 18, 12, 6, 0, as in a deeper network's first layers). Plain momentum SGD at batch size one
(no delay) against PB with the same hyperparameters, PB + SC, PB + LWP and PB + SC + LWP; measured is
the mean loss over the last quarter of the run (each sample's loss from its own forward pass, before
any update it causes), the test accuracy at the end, and the fraction of the loss PB loses to staleness
that each fix recovers.
"""
import torch
import torch.nn.functional as F

from course.checks import check_index_range, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import gaussian_mixture, ring_centers
from course.landscape.models import check_widths, flatten, mlp, mlp_logits, parameter_count, unflatten
from course.train import one_thread

WIDTHS = (2, 32, 32, 32, 6)
STEPS = 600
LR = 0.003
MOMENTUM = 0.9
HOP = 3  # steps from one layer to the next: the delays of a pipeline three stages per layer deep
METHODS = {"pb": (False, False), "pb_sc": (True, False), "pb_lwp": (False, True),
           "pb_sc_lwp": (True, True)}  # name: (spike compensation, linear weight prediction)


def stage_delays(layers: int, hop: int = 1) -> list:
    """D_l = 2 hop (L - l) for layers l = 1 .. L, where a sample takes `hop` steps from one
    layer to the next (hop = 1: one stage per layer): [layers]."""
    check_int("stage_delays", "layers", layers, low=1)
    check_int("stage_delays", "hop", hop, low=1)
    return [2 * hop * (layers - s) for s in range(1, layers + 1)]


def spike_coefficients(delay: int, momentum: float) -> tuple:
    """Spike Compensation's (a, b) = (m^D, (1 - m^D) / (1 - m)) for a delay D."""
    check_int("spike_coefficients", "delay", delay, low=0)
    if not 0 <= momentum < 1:
        raise ValueError(f"spike_coefficients: `momentum` must be in [0, 1); got {momentum}.")
    return momentum ** delay, (1 - momentum ** delay) / (1 - momentum)


def predicted_weights(w: torch.Tensor, velocity: torch.Tensor, lr: float, delay) -> torch.Tensor:
    """Linear Weight Prediction: w_hat = w - lr D v, the weights D steps ahead (`delay`
    a number, or a tensor that broadcasts against w, e.g. one horizon per method [M, 1, 1])."""
    return w - (lr * delay) * velocity


def blob_stream(steps: int, seed: int):
    """(x [steps, 2], labels [steps]): a fresh sample of the six-blob task for every step."""
    x, labels = gaussian_mixture(steps, ring_centers(WIDTHS[-1]), std=0.4, seed=seed)
    return x.double(), labels


def check_stream(where: str, theta, x, labels, widths) -> tuple:
    """theta [P] for `widths`, x [T, I], labels [T] (ints in [0, C)); returns the checked widths."""
    widths = check_widths(where, widths)
    check_tensor(where, "theta", theta, ndim=1, kind="float")
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "labels", labels, ndim=1, kind="int")
    if theta.numel() != parameter_count(widths) or x.shape[1] != widths[0] or len(labels) != len(x):
        raise ValueError(f"{where}: `theta` [P = {parameter_count(widths)}], `x` [T, {widths[0]}] and "
                         f"`labels` [T] must match widths {widths}; got {tuple(theta.shape)}, "
                         f"{tuple(x.shape)} and {tuple(labels.shape)}.")
    check_index_range(where, "labels", labels, widths[-1], "C")
    return widths


def momentum_update(w, v, g, lr, momentum, a=1.0, b=0.0):
    """v <- m v + g; w <- w - lr (a v + b g) in place (a = 1, b = 0: momentum SGD)."""
    v.mul_(momentum).add_(g)
    w.sub_(lr * (a * v + b * g))


def sgd(theta: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, widths, lr=LR, momentum=MOMENTUM):
    """Momentum SGD at batch size one, no pipeline: -> (theta' [P], the loss of each sample [T] before
    its own update). Written out (no autograd), as the pipeline is."""
    widths = check_stream("sgd", theta, x, labels, widths)
    w = theta.to(x.dtype).clone()
    v = torch.zeros_like(w)
    layers, velocities = unflatten(w, widths), unflatten(v, widths)
    onehot = F.one_hot(labels, widths[-1]).to(x.dtype)
    logits = torch.zeros(len(x), widths[-1], dtype=x.dtype)
    for n in range(len(x)):
        inputs, h = [], x[n]
        for W, b in layers:
            inputs.append(h)
            h = torch.addmv(b, W, h)
            if len(inputs) < len(layers):
                h = torch.relu(h)
        logits[n] = h
        delta = torch.softmax(h, 0) - onehot[n]
        for s in reversed(range(len(layers))):
            (W, b), (vW, vb) = layers[s], velocities[s]
            gW, gb = torch.outer(delta, inputs[s]), delta
            if s > 0:  # before the update: backprop uses the weights of the forward pass
                delta = (W.T @ delta) * (inputs[s] > 0)
            momentum_update(W, vW, gW, lr, momentum)
            momentum_update(b, vb, gb, lr, momentum)
    return w, F.cross_entropy(logits, labels, reduction="none")


def pipelined_sgd(theta: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, widths, methods: dict,
                  lr=LR, momentum=MOMENTUM, hop: int = 1):
    """Fine-grained PB of M methods side by side from the same theta [P] on the same stream (x [T, I],
    labels [T]); methods: {name: (spike compensation, weight prediction)}; a sample reaches the next
    layer `hop` steps after this one (hop = 1: one stage per layer, the paper's fine-grained PB).
    -> ({name: theta' [P]}, losses [M, T]: each sample's loss from its own forward pass)."""
    widths = check_stream("pipelined_sgd", theta, x, labels, widths)
    if not methods:
        raise ValueError("pipelined_sgd: `methods` must name at least one method; got none.")
    S, M, T = len(widths) - 1, len(methods), len(x)
    delays = stage_delays(S, hop)
    sc, lwp = (torch.tensor([float(f[i]) for f in methods.values()], dtype=x.dtype) for i in (0, 1))
    horizon = [(d * lwp)[:, None, None] for d in delays]  # LWP's D per method, 0 without it
    coef = [spike_coefficients(d, momentum) for d in delays]
    a = [(1 + sc * (ca - 1))[:, None, None] for ca, _ in coef]  # SC's (a, b) where on, (1, 0) where off
    c = [(sc * cb)[:, None, None] for _, cb in coef]
    w = theta.to(x.dtype).expand(M, -1).clone()
    v = torch.zeros_like(w)
    layers, velocities = unflatten(w, widths), unflatten(v, widths)  # views: W [M, out, in], b [M, out]
    onehot = F.one_hot(labels, widths[-1]).to(x.dtype)
    inflight = [{} for _ in range(S)]  # stage s: sample n -> its input [M, in], kept for the backward
    acts, error = {}, {}  # sample n -> activation for the next stage / error for the stage below
    logits = torch.zeros(M, T, widths[-1], dtype=x.dtype)
    for t in range(T + hop * (2 * S - 2)):
        for s in range(S):  # the forward wave: layer s forwards sample t - hop s
            n = t - hop * s
            if not 0 <= n < T:
                continue
            inp = x[n].expand(M, -1) if s == 0 else acts.pop(n)
            (W, b), (vW, vb) = layers[s], velocities[s]
            W_hat = predicted_weights(torch.cat([W, b[:, :, None]], 2), torch.cat([vW, vb[:, :, None]], 2),
                                      lr, horizon[s])  # [M, out, in + 1]
            pre = torch.baddbmm(W_hat[:, :, -1:], W_hat[:, :, :-1], inp[:, :, None])[:, :, 0]
            inflight[s][n] = inp
            if s < S - 1:
                acts[n] = torch.relu(pre)
            else:  # the last stage turns round at once: its backward is this step
                logits[:, n] = pre
                error[n] = torch.softmax(pre, 1) - onehot[n]
        for s in reversed(range(S)):  # the backward wave: layer s back-propagates sample t - hop s - D_s
            n = t - hop * (2 * S - 2 - s)
            if not 0 <= n < T:
                continue
            inp, delta = inflight[s].pop(n), error.pop(n)
            (W, b), (vW, vb) = layers[s], velocities[s]
            if s > 0:  # with the current weights, not the forward's; gated by the ReLU below
                error[n] = torch.bmm(delta[:, None, :], W)[:, 0] * (inp > 0)
            momentum_update(W, vW, delta[:, :, None] * inp[:, None, :], lr, momentum, a[s], c[s])
            momentum_update(b, vb, delta, lr, momentum, a[s][:, 0], c[s][:, 0])
    losses = F.cross_entropy(logits.reshape(M * T, -1), labels.repeat(M), reduction="none")
    return dict(zip(methods, w)), losses.reshape(M, T)


def accuracy_on(theta: torch.Tensor, x: torch.Tensor, labels: torch.Tensor) -> float:
    """The MLP's test accuracy at theta [P]."""
    return float((mlp_logits(theta, x, WIDTHS).argmax(1) == labels).double().mean())


def pipelined_backprop_experiment(seed: int) -> dict:
    """Late loss and final accuracy of SGD, PB and PB with each fix; the share of PB's loss recovered."""
    check_int("pipelined_backprop_experiment", "seed", seed, low=0)
    x, labels = blob_stream(STEPS, seed)
    x_test, y_test = blob_stream(1000, 10_000 + seed)
    theta = flatten(mlp(WIDTHS, seed=seed)).double()
    late = slice(3 * STEPS // 4, STEPS)
    with one_thread():
        sgd_theta, sgd_losses = sgd(theta, x, labels, WIDTHS)
        pipelined, losses = pipelined_sgd(theta, x, labels, WIDTHS, METHODS, hop=HOP)
    final = {"sgd": sgd_theta, **pipelined}
    m = {"sgd_loss": float(sgd_losses[late].mean())}
    m.update({f"{name}_loss": float(losses[i, late].mean()) for i, name in enumerate(METHODS)})
    m.update({f"{name}_accuracy": accuracy_on(w, x_test, y_test) for name, w in final.items()})
    m["staleness_cost"] = m["pb_loss"] - m["sgd_loss"]
    for name in ("pb_sc", "pb_lwp", "pb_sc_lwp"):
        m[f"{name}_recovered"] = (m["pb_loss"] - m[f"{name}_loss"]) / m["staleness_cost"]
    return m


CLAIM = Claim(
    paper="Kosson et al. 2021",
    citation="Pipelined Backpropagation at Scale: Training Large Models without Batches "
             "(arXiv:2003.11666): fine-grained PB and its per-stage delays, and the two mitigations, Spike "
             "Compensation and Linear Weight Prediction",
    statement="the gradient delays of fine-grained pipelined backpropagation at batch size one cost "
              "accuracy; Spike Compensation and Linear Weight Prediction mitigate them, recovering most "
              "of the gap to SGD",
    kind=REPRODUCTION,
    experiment=pipelined_backprop_experiment,
    thresholds=("staleness_cost >= 0.05", "pb_sc_recovered >= 0.5", "pb_lwp_recovered >= 0.5",
                "pb_sc_lwp_recovered >= 0.5"),
    held_on=(),
    note="Not reproduced as stated. The delays cost 0.34, 0.46, 0.32 nats of late loss on seeds 0, 1, 2 "
         "(SGD 0.036, 0.109, 0.091; PB 0.374, 0.571, 0.406). Spike Compensation alone recovers 49%, 86%, "
         "94% of it (it holds on seeds 1 and 2, and misses by a point on seed 0), Linear Weight "
         "Prediction alone -69%, 51%, 83%, and the two combined -157%, -34%, 5%, worse than PB. A likely "
         "reason: with momentum 0.9 a velocity decays in about 10 steps, and the first layer's delay is "
         "18, so predicting 18 steps at constant velocity overshoots; under SC the weights move by "
         "a v = 0.9^D v between spikes, so the prediction overshoots further. The paper trains with "
         "momentum scaled towards 1 for batch size one, where the velocity is close to constant over "
         "a delay, and may predict a combined run from the last weight change rather than the velocity "
         "(its text was not available here to check); neither is tried, so as not to tune after seeing "
         "the numbers. With one stage per layer (delays 6, 4, 2, 0) the staleness cost is below the "
         "0.05 this claim requires on every seed (0.012, 0.004, 0.024).",
    summary=lambda m: (
        f"{len(WIDTHS) - 1} layers, delays {', '.join(map(str, stage_delays(len(WIDTHS) - 1, HOP)))}, "
        f"{STEPS} samples at batch size one, loss over the last quarter: SGD {m['sgd_loss']:.3f}, "
        f"PB {m['pb_loss']:.3f}, PB+SC {m['pb_sc_loss']:.3f}, PB+LWP {m['pb_lwp_loss']:.3f}, "
        f"PB+SC+LWP {m['pb_sc_lwp_loss']:.3f} "
        f"(recovering {m['pb_sc_recovered']:.0%}, {m['pb_lwp_recovered']:.0%}, "
        f"{m['pb_sc_lwp_recovered']:.0%} of PB's gap); test accuracy SGD {m['sgd_accuracy']:.3f}, PB "
        f"{m['pb_accuracy']:.3f}, PB+SC+LWP {m['pb_sc_lwp_accuracy']:.3f}"),
)
