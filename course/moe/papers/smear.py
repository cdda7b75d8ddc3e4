"""Soft Merging of Experts with Adaptive Routing (SMEAR): Muqeeth, Liu and Raffel 2023, section 3.

A router gives each example a distribution over E experts that share one architecture. Instead of
running the chosen expert(s), SMEAR averages the experts' *parameters* with those probabilities and
runs the one merged expert:

    p(x)    = softmax(x W_r)                         router probabilities           [B, E]
    theta_x = sum_e p_e(x) theta_e                   merged parameters of example x
    y       = f(x; theta_x)                          one forward of the merged expert

Everything is differentiable, so the router is trained by plain backpropagation, and the cost is one
expert's forward plus the (cheap) merge. The paper compares it with learned discrete routing trained
by gradient estimators, among them straight-through: the forward runs only the argmax expert and
the backward pretends the one-hot choice was the softmax,

    y = sum_e (onehot_e + p_e - stopgrad(p_e)) f(x; theta_e)

and reports that SMEAR does better (section 4; the paper's straight-through baseline draws the expert
with Gumbel noise, here it is the plain argmax). Here the experts are one-hidden-layer ReLU
networks and the problem is a synthetic multi-task regression: each task maps the input's content
through its own random network, and the task is readable from a code in the input, so a router can
recover it and one expert per task is the ideal.
"""
import torch
from einops import einsum
from torch import nn

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import relative_mse
from course.train import fit, seeded

ROUTINGS = ("smear", "straight_through", "oracle")


class ExpertBank(nn.Module):
    """E experts with one ReLU hidden layer: f(x; theta_e) = ReLU(x W1_e + b1_e) W2_e + b2_e."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, num_experts: int):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(num_experts, d_in, d_hidden) / d_in ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(num_experts, d_hidden))
        self.w2 = nn.Parameter(torch.randn(num_experts, d_hidden, d_out) / d_hidden ** 0.5)
        self.b2 = nn.Parameter(torch.zeros(num_experts, d_out))

    def merged(self, probs):
        """SMEAR's merge: each example's prob-weighted average of every expert parameter.

        probs [B, E] -> w1 [B, D, H], b1 [B, H], w2 [B, H, O], b2 [B, O].
        """
        params = (self.w1, self.b1, self.w2, self.b2)
        return tuple(einsum(probs, p, "B E, E ... -> B ...") for p in params)

    def every_expert(self, x):
        """All experts on all examples. x [B, D] -> [B, E, O]"""
        h = torch.relu(einsum(x, self.w1, "B D, E D H -> B E H") + self.b1)
        return einsum(h, self.w2, "B E H, E H O -> B E O") + self.b2


def merged_expert_forward(x, w1, b1, w2, b2):
    """One forward with per-example parameters.

    x [B, D], w1 [B, D, H], b1 [B, H], w2 [B, H, O], b2 [B, O] -> [B, O].
    """
    h = torch.relu(einsum(x, w1, "B D, B D H -> B H") + b1)
    return einsum(h, w2, "B H, B H O -> B O") + b2


def smear(x, router_logits, bank: ExpertBank):
    """SMEAR (section 3): merge the experts with the router's probabilities, run the merge once.

    x [B, D], router_logits [B, E] -> y [B, O].
    """
    return merged_expert_forward(x, *bank.merged(router_logits.softmax(-1)))


def straight_through_top1(x, router_logits, bank: ExpertBank):
    """Top-1 routing with the straight-through estimator: the output is the argmax expert's, the
    gradient is taken as if the gates were the softmax probabilities.

    Only the argmax expert receives parameter gradients, but the router's gradient needs every
    expert's output (d y / d p_e = f(x; theta_e)): straight-through is dense in the backward pass.
    x [B, D], router_logits [B, E] -> [B, O].
    """
    probs = router_logits.softmax(-1)  # [B, E]
    onehot = nn.functional.one_hot(probs.argmax(-1), probs.shape[1]).to(probs.dtype)
    gates = onehot + probs - probs.detach()  # value: one-hot; gradient: the softmax's
    return einsum(gates, bank.every_expert(x), "B E, B E O -> B O")


def multitask_regression(n: int, num_tasks: int, d_content: int = 4, d_code: int = 4,
                         code_noise: float = 0.3, seed: int = 0, split: int = 0):
    """A multi-task regression whose task is readable from the input.

    Each task t has a random code c_t [d_code] and a random teacher network g_t (tanh hidden layer);
    an example is x = [u, c_t + noise] with content u ~ N(0, I), target y = g_t(u).
    -> x [n, d_content + d_code], task [n], y [n, 1]. The tasks (codes, teachers) depend on `seed`
    alone and the examples on (`seed`, `split`): a train and a test set differ only in `split`.
    """
    check_int("moe.multitask_regression", "num_tasks", num_tasks, low=1)
    g = torch.Generator().manual_seed(20_000 + seed)
    codes = 2.0 * torch.randn(num_tasks, d_code, generator=g)  # [T, C]
    a = torch.randn(num_tasks, d_content, 8, generator=g)  # [T, U, 8]
    b = torch.randn(num_tasks, 8, 1, generator=g) / 8 ** 0.5  # [T, 8, 1]
    draw = torch.Generator().manual_seed(30_000 + 1000 * seed + split)
    task = torch.randint(num_tasks, (n,), generator=draw)
    u = torch.randn(n, d_content, generator=draw)
    code = codes[task] + code_noise * torch.randn(n, d_code, generator=draw)
    y = einsum(torch.tanh(einsum(u, a[task], "n U, n U K -> n K")), b[task], "n K, n K O -> n O")
    return torch.cat([u, code], dim=1), task, y


class RoutedExperts(nn.Module):
    """A linear router over the whole input and experts over its content, combined by one of ROUTINGS.

    The experts see only the first `d_content` features (the content u, not the task code), so no
    single expert can serve two tasks: the routing has to pick the right one. "oracle" ignores the
    router and uses the expert whose index is the example's task.
    """

    def __init__(self, d_in: int, d_content: int, d_hidden: int, d_out: int, num_experts: int,
                 routing: str):
        super().__init__()
        if routing not in ROUTINGS:
            raise ValueError(f"RoutedExperts: `routing` must be one of {ROUTINGS}; got {routing!r}.")
        self.routing, self.d_content = routing, d_content
        self.router = nn.Linear(d_in, num_experts)
        self.bank = ExpertBank(d_content, d_hidden, d_out, num_experts)

    def forward(self, x, task=None):
        """x [B, D] (task [B] for the oracle) -> y [B, O]."""
        u = x[:, :self.d_content]  # [B, U]
        if self.routing == "oracle":
            return self.bank.every_expert(u)[torch.arange(x.shape[0]), task]
        logits = self.router(x)
        if self.routing == "smear":
            return smear(u, logits, self.bank)
        return straight_through_top1(u, logits, self.bank)


def train_routed(x, task, y, routing: str, num_experts: int, d_content: int = 4, d_hidden: int = 8,
                 steps: int = 300, lr: float = 0.03, seed: int = 0) -> RoutedExperts:
    """Full-batch Adam on MSE. x [B, D], task [B], y [B, O] -> the trained model."""
    where = "moe.train_routed"
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_shape(where, "y", y, (x.shape[0], y.shape[-1]), "[B, O] with B = x.shape[0]")
    with seeded(seed):
        model = RoutedExperts(x.shape[1], d_content, d_hidden, y.shape[1], num_experts, routing)
    fit(model.parameters(), lambda: (model(x, task) - y).pow(2).mean(), steps, lr, seed=seed,
        desc=f"{routing} routing")
    return model


def smear_experiment(seed: int, num_tasks: int = 8, n_train: int = 1024, n_test: int = 1024) -> dict:
    """Test error (MSE / Var y) of SMEAR, straight-through top-1 and oracle routing, same experts."""
    x, task, y = multitask_regression(n_train, num_tasks, seed=seed)
    x_test, task_test, y_test = multitask_regression(n_test, num_tasks, seed=seed, split=1)
    m = {}
    for routing in ROUTINGS:
        model = train_routed(x, task, y, routing, num_tasks, seed=seed)
        with torch.no_grad():
            m[f"error_{routing}"] = relative_mse(model(x_test, task_test), y_test)
            used = model.router(x_test).argmax(-1).unique().numel()
        if routing == "straight_through":
            m["experts_used_straight_through"] = used
    m["error_ratio"] = m["error_straight_through"] / max(m["error_smear"], 1e-12)
    m["smear_over_oracle"] = m["error_smear"] / m["error_oracle"]
    return m


CLAIM = Claim(
    paper="Muqeeth, Liu, Raffel 2023",
    citation="Soft Merging of Experts with Adaptive Routing (SMEAR, arXiv:2306.03745), sections 3-4",
    statement="merging the experts' parameters with the router's probabilities outperforms learned "
              "discrete routing trained with gradient estimators (here straight-through top-1)",
    kind=REPRODUCTION,
    experiment=smear_experiment,
    thresholds=("error_ratio >= 1.25",),
    summary=lambda m: (
        f"8 tasks, 8 experts: test error (MSE / Var y) SMEAR {m['error_smear']:.2g}, top-1 "
        f"straight-through {m['error_straight_through']:.2g} ({m['error_ratio']:.2g}x SMEAR's; its "
        f"router uses {m['experts_used_straight_through']} of 8 experts), oracle task routing "
        f"{m['error_oracle']:.2g}"),
)
