"""The Dynamical Systems Framework: every sequence mixer as one linear time-varying system.

Sieber, Amo Alonso, Didier, Zeilinger and Orvieto 2024, "Understanding the differences in Foundation
Models: Attention, State Space Models, and Recurrent Neural Networks" (arXiv:2405.15731), section 2,
eq. (1): a layer maps its inputs x_t [d] to outputs y_t [d] through

    h_t = A_t h_{t-1} + B_t x_t,      y_t = C_t h_t + D_t x_t,      h_{-1} = 0,

with A_t [N, N] (the paper's Lambda_t), B_t [N, d], C_t [d, N], D_t [d, d] that may depend on the input
(the *selection*). Unrolled, y = Phi x with the blocks Phi_ij = C_i A_i ... A_{j+1} B_j (j < i),
Phi_ii = C_i B_i + D_i (eq. 2, the convolutional form). Each model below is written twice, in its usual
form and as the (A_t, B_t, C_t, D_t) it induces on a given sequence, and `run_system` runs the one
recurrence for all of them:

- softmax attention (section 3.1): exactly, with a state that grows with t (the KV cache: h_t stacks
  the values W_v x_1 .. W_v x_t, A_t embeds h_{t-1} into it, C_t is the row of attention weights); or,
  with a kernel exp(q.k) = phi(q).phi(k), in the paper's normalised form h_t = S_t / eta_t with
  A_t = (eta_{t-1} / eta_t) I, B_t = phi(k_t) W_v / eta_t, C_t = phi(q_t)^T, eta_t = phi(q_t).sum_j phi(k_j):
  exp's feature map is infinite (its Taylor series), so `order=P` truncates it to a state of
  n = sum_{p<=P} d_k^p features per value channel;
- linear attention (Katharopoulos et al. 2020): phi = elu + 1, normalised as above, or unnormalised
  (A_t = I: nothing is ever forgotten);
- a selective SSM (S6, Mamba; section 3.2): A_t = diag(exp(Delta_t A)) over d channels x n states, and
  its time-invariant (LTI, S4D-like) twin with Delta, B, C fixed;
- the RG-LRU (Griffin, section 3.3 of the DSF paper): A_t = diag(a_t), B_t = diag(sqrt(1 - a_t^2) i_t);
- a gated linear RNN (HGRN's recurrence, a qLSTM in the paper's words): A_t = diag(lambda_t),
  B_t = diag(1 - lambda_t) on the candidate c_t, C_t = diag(g_t) the output gate.

Everything here is for one sequence x [T, d] (the DSF's matrices are per sequence); float64 in tests.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.ssm import ops


@dataclass(frozen=True)
class System:
    """A linear time-varying system on one sequence: A[t] [N_t, N_{t-1}], B[t] [N_t, d_in],
    C[t] [d_out, N_t], D[t] [d_out, d_in] or None, and its input x [T, d_in]."""

    A: tuple
    B: tuple
    C: tuple
    D: tuple | None
    x: torch.Tensor

    @property
    def length(self) -> int:
        return len(self.A)


def check_sequence(where: str, x, d: int | None = None):
    """x must be a float tensor [T, d]."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{where}: `x` must be [T, d] with d = {d}; got shape {tuple(x.shape)}.")


def run_system(system: System) -> torch.Tensor:
    """y [T, d_out] of eq. (1), step by step: h_t = A_t h_{t-1} + B_t x_t, y_t = C_t h_t + D_t x_t."""
    x = system.x
    h = x.new_zeros(system.A[0].shape[1]) if system.length else None
    out = []
    for t in range(system.length):
        h = system.A[t] @ h + system.B[t] @ x[t]
        y = system.C[t] @ h
        out.append(y if system.D is None else y + system.D[t] @ x[t])
    return torch.stack(out) if out else x.new_zeros(0, x.shape[1])


def convolution_kernel(system: System) -> torch.Tensor:
    """Phi [T, d_out, T, d_in] of eq. (2): Phi[i, :, j] = C_i A_i ... A_{j+1} B_j for j <= i (plus D_i
    on the diagonal), 0 above it; y_i = sum_j Phi[i, :, j] x_j."""
    T, d_in = system.x.shape
    d_out = system.C[0].shape[0] if T else d_in
    Phi = system.x.new_zeros(T, d_out, T, d_in)
    for j in range(T):
        carried = system.B[j]  # A_i ... A_{j+1} B_j, [N_i, d_in]
        for i in range(j, T):
            if i > j:
                carried = system.A[i] @ carried
            Phi[i, :, j] = system.C[i] @ carried
        if system.D is not None:
            Phi[j, :, j] += system.D[j]
    return Phi


def causal_mask(T: int) -> torch.Tensor:
    """[T, T] bool, True where query t may see key s (s <= t)."""
    return torch.ones(T, T, dtype=torch.bool).tril()


def softmax_attention(x, Wq, Wk, Wv):
    """Causal softmax attention (Vaswani et al. 2017): softmax(q k^T / sqrt(d_k)) v with q = x Wq^T,
    k = x Wk^T, v = x Wv^T. x [T, d], Wq, Wk [d_k, d], Wv [d, d] -> y [T, d]."""
    check_sequence("ssm.softmax_attention", x)
    q, k, v = x @ Wq.T, x @ Wk.T, x @ Wv.T
    scores = (q @ k.T / math.sqrt(q.shape[1])).masked_fill(~causal_mask(len(x)), float("-inf"))
    return scores.softmax(-1) @ v


def softmax_attention_system(x, Wq, Wk, Wv) -> System:
    """Softmax attention as eq. (1) with a growing state (the KV cache): h_t = [h_{t-1}; W_v x_t]
    [t d], A_t = [I; 0] [t d, (t-1) d], B_t = [0; W_v], C_t = the attention row of t (x) I_d."""
    check_sequence("ssm.softmax_attention_system", x)
    T, d = x.shape
    q, k = x @ Wq.T, x @ Wk.T
    scores = (q @ k.T / math.sqrt(q.shape[1])).masked_fill(~causal_mask(T), float("-inf"))
    weights = scores.softmax(-1)  # [T, T]
    eye = torch.eye(d, dtype=x.dtype)
    A, B, C = [], [], []
    for t in range(T):
        A.append(torch.eye(t * d + d, t * d, dtype=x.dtype))
        B.append(torch.cat([x.new_zeros(t * d, Wv.shape[1]), Wv]))
        C.append(torch.kron(weights[t, :t + 1][None], eye))
    return System(tuple(A), tuple(B), tuple(C), None, x)


def taylor_features(z, order: int):
    """The Taylor feature map of exp: phi(z) = [z^(x)p / sqrt(p!)]_{p=0..order}, so that
    phi(q).phi(k) = sum_{p<=order} (q.k)^p / p!. z [T, m] -> [T, sum_p m^p]."""
    check_int("ssm.taylor_features", "order", order, low=0)
    feats, power = [z.new_ones(len(z), 1)], z.new_ones(len(z), 1)
    for p in range(1, order + 1):
        power = (power[:, :, None] * z[:, None, :]).flatten(1)
        feats.append(power / math.sqrt(math.factorial(p)))
    return torch.cat(feats, 1)


def elu_features(z):
    """Linear attention's feature map (Katharopoulos et al. 2020): elu(z) + 1 > 0. [T, m] -> [T, m]."""
    return F.elu(z) + 1


def kernel_attention(x, Wq, Wk, Wv, features, normalize: bool = True):
    """Causal kernel (linear) attention in its parallel form: y_t = sum_{s<=t} phi(q_t).psi(k_s) v_s,
    divided by sum_{s<=t} phi(q_t).psi(k_s) when `normalize`. `features` maps [T, d_k] -> [T, n]
    (queries and keys scaled by d_k^(-1/4) each, so q.k carries softmax's 1/sqrt(d_k))."""
    check_sequence("ssm.kernel_attention", x)
    scale = Wq.shape[0] ** -0.25
    fq, fk, v = features(scale * x @ Wq.T), features(scale * x @ Wk.T), x @ Wv.T
    scores = (fq @ fk.T) * causal_mask(len(x))
    if normalize:
        scores = scores / scores.sum(-1, keepdim=True)
    return scores @ v


def kernel_attention_system(x, Wq, Wk, Wv, features, normalize: bool = True) -> System:
    """Kernel attention as eq. (1) over the state vec(S_t / eta_t) [n d] (S_t = sum_s psi(k_s) v_s^T):
    normalised, A_t = eta_{t-1} / eta_t I, B_t = psi(k_t) (x) W_v / eta_t, C_t = phi(q_t)^T (x) I_d with
    eta_t = phi(q_t).sum_{s<=t} psi(k_s) (section 3.1); unnormalised, A_t = I and eta = 1."""
    check_sequence("ssm.kernel_attention_system", x)
    T, d = x.shape
    scale = Wq.shape[0] ** -0.25
    fq, fk = features(scale * x @ Wq.T), features(scale * x @ Wk.T)  # [T, n]
    n = fq.shape[1]
    eta = (fq * fk.cumsum(0)).sum(1) if normalize else x.new_ones(T)  # [T]
    eye_state, eye_d = torch.eye(n * d, dtype=x.dtype), torch.eye(Wv.shape[0], dtype=x.dtype)
    A, B, C = [], [], []
    for t in range(T):
        previous = eta[t - 1] if t else x.new_zeros(())
        A.append((previous / eta[t] if normalize else x.new_ones(())) * eye_state)
        B.append(torch.kron(fk[t][:, None], Wv) / eta[t])
        C.append(torch.kron(fq[t][None], eye_d))
    return System(tuple(A), tuple(B), tuple(C), None, x)


def kernel_attention_recurrent(x, Wq, Wk, Wv, features, normalize: bool = True):
    """The same system as `kernel_attention_system`, run with its structure rather than dense
    matrices: the state h_t [n, d] and the scalar A_t = eta_{t-1} / eta_t, so that large feature maps
    (high Taylor orders) fit. x [T, d] -> y [T, d]."""
    check_sequence("ssm.kernel_attention_recurrent", x)
    scale = Wq.shape[0] ** -0.25
    fq, fk, v = features(scale * x @ Wq.T), features(scale * x @ Wk.T), x @ Wv.T
    h, z, eta_prev, out = x.new_zeros(fq.shape[1], v.shape[1]), x.new_zeros(fq.shape[1]), None, []
    for t in range(len(x)):
        z = z + fk[t]
        eta = fq[t] @ z if normalize else x.new_ones(())
        decay = (eta_prev / eta if eta_prev is not None else 0.0) if normalize else 1.0
        h = decay * h + fk[t][:, None] * v[t][None] / eta  # A_t h_{t-1} + B_t x_t
        out.append(fq[t] @ h)  # C_t h_t
        eta_prev = eta
    return torch.stack(out) if out else x.new_zeros(0, v.shape[1])


def selective_ssm_parts(x, W_delta, b_delta, W_B, W_C, selective: bool = True):
    """S6's input-dependent Delta [T, d] = softplus(x W_delta^T + b_delta), B, C [T, n] = x W_B^T, x W_C^T
    (Gu and Dao 2023, Algorithm 2); `selective=False`: the LTI twin, Delta = softplus(b_delta) and
    B, C the rows W_B[:, 0], W_C[:, 0] at every step (time-invariant, input-independent)."""
    T = len(x)
    if selective:
        return F.softplus(x @ W_delta.T + b_delta), x @ W_B.T, x @ W_C.T
    return (F.softplus(b_delta).expand(T, -1), W_B[:, 0].expand(T, -1), W_C[:, 0].expand(T, -1))


def selective_ssm(x, A, W_delta, b_delta, W_B, W_C, D, selective: bool = True):
    """S6 in its usual form, through the `ssm.selective_scan` op. x [T, d], A [d, n] < 0, W_delta [d, d],
    b_delta [d], W_B, W_C [n, d], D [d] -> y [T, d]."""
    check_sequence("ssm.selective_ssm", x)
    delta, Bt, Ct = selective_ssm_parts(x, W_delta, b_delta, W_B, W_C, selective)
    return ops.selective_scan(x[None], delta[None], A, Bt[None].contiguous(), Ct[None].contiguous(), D,
                              backend="auto")[0]


def selective_ssm_system(x, A, W_delta, b_delta, W_B, W_C, D, selective: bool = True) -> System:
    """S6 as eq. (1) over the state [d n] (channel-major): A_t = diag(exp(Delta_t[i] A[i, k])),
    B_t[(i, k), i] = Delta_t[i] B_t[k], C_t[i, (i, k)] = C_t[k], D_t = diag(D)."""
    check_sequence("ssm.selective_ssm_system", x)
    delta, Bt, Ct = selective_ssm_parts(x, W_delta, b_delta, W_B, W_C, selective)
    d, n = A.shape
    eye = torch.eye(d, dtype=x.dtype)
    A_t = tuple(torch.diag(torch.exp(delta[t][:, None] * A).reshape(-1)) for t in range(len(x)))
    B_t = tuple((eye[:, None, :] * (delta[t][:, None] * Bt[t])[:, :, None]).reshape(d * n, d)
                for t in range(len(x)))
    C_t = tuple((eye[:, :, None] * Ct[t]).reshape(d, d * n) for t in range(len(x)))
    return System(A_t, B_t, C_t, tuple(torch.diag(D) for _ in range(len(x))), x)


def diagonal_system(x, a, b, c=None) -> System:
    """A diagonal recurrence as eq. (1): A_t = diag(a[t]), B_t = diag(b[t]), C_t = diag(c[t]) (I if
    None); x, a, b, c [T, d]."""
    C = tuple(torch.eye(x.shape[1], dtype=x.dtype) if c is None else torch.diag(c[t]) for t in range(len(x)))
    return System(tuple(torch.diag(v) for v in a), tuple(torch.diag(v) for v in b), C, None, x)


def rglru_system(layer, x) -> System:
    """Griffin's RG-LRU (`course.ssm.layers.RGLRU`, eqs. 1-4) as eq. (1): A_t = diag(a_t),
    B_t = diag(sqrt(1 - a_t^2) i_t), C_t = I; state size d. x [T, d]."""
    check_sequence("ssm.rglru_system", x)
    r = torch.sigmoid(layer.gate_a(x[None]))[0]
    i = torch.sigmoid(layer.gate_x(x[None]))[0]
    a_t = torch.exp(layer.c * r * layer.log_a())
    return diagonal_system(x, a_t, torch.sqrt(1 - a_t ** 2) * i)


def gated_rnn_parts(layer, x, gamma: float = 0.0):
    """HGRN's recurrence (`course.ssm.layers.HGRNLayer`): forget gate lambda_t, candidate
    c_t = SiLU(x W_c + b_c), output gate g_t, each [T, d]."""
    lam = layer.forget_gate(x, gamma)
    return lam, F.silu(layer.input(x)), torch.sigmoid(layer.output_gate(x))


def gated_rnn(layer, x, gamma: float = 0.0):
    """The gated linear RNN in its usual form: g_t * h_t with h_t = lambda_t h_{t-1} + (1 - lambda_t) c_t,
    through the scan op. x [T, d] -> [T, d] (the output gate before HGRN's norm and projection)."""
    lam, c, g = gated_rnn_parts(layer, x, gamma)
    return g * ops.scan(lam[None], ((1 - lam) * c)[None], backend="auto")[0]


def gated_rnn_system(layer, x, gamma: float = 0.0) -> System:
    """The gated linear RNN as eq. (1) on its candidates c [T, d]: A_t = diag(lambda_t),
    B_t = diag(1 - lambda_t), C_t = diag(g_t); the system's input is c."""
    lam, c, g = gated_rnn_parts(layer, x, gamma)
    return diagonal_system(c, lam, 1 - lam, g)


MODELS = ("softmax attention", "softmax attention (Taylor)", "linear attention",
          "linear attention (unnormalised)", "selective SSM (S6)", "LTI SSM (S4D-like)", "RG-LRU",
          "gated linear RNN")


def model_zoo(d: int = 4, n: int = 4, seed: int = 0, order: int = 2, dtype=torch.float64) -> dict:
    """Every model of MODELS with random weights (seeded): name -> (usual form, DSF system), each a
    function of one sequence x [T, d] (the DSF system's `x` is the layer's input, the gated RNN's its
    candidates). `order`: the Taylor order of the truncated softmax kernel (even, so it stays > 0)."""
    from course.ssm.layers import HGRNLayer, RGLRU

    check_int("ssm.model_zoo", "d", d, low=1)
    check_int("ssm.model_zoo", "n", n, low=1)
    g = torch.Generator().manual_seed(seed)

    def w(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=g, dtype=dtype) / math.sqrt(shape[-1])

    Wq, Wk, Wv = w(d, d), w(d, d), w(d, d)
    A = -torch.arange(1, n + 1, dtype=dtype).expand(d, n)  # S4D-real initialisation
    ssm = (A, w(d, d), w(d, scale=0.5) - 1.0, w(n, d), w(n, d), w(d))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        rglru, hgrn = RGLRU(d, blocks=1).to(dtype), HGRNLayer(d).to(dtype)

    def taylor(z):
        return taylor_features(z, order)

    return {
        "softmax attention": (lambda x: softmax_attention(x, Wq, Wk, Wv),
                              lambda x: softmax_attention_system(x, Wq, Wk, Wv)),
        "softmax attention (Taylor)": (lambda x: kernel_attention(x, Wq, Wk, Wv, taylor),
                                       lambda x: kernel_attention_system(x, Wq, Wk, Wv, taylor)),
        "linear attention": (lambda x: kernel_attention(x, Wq, Wk, Wv, elu_features),
                             lambda x: kernel_attention_system(x, Wq, Wk, Wv, elu_features)),
        "linear attention (unnormalised)": (
            lambda x: kernel_attention(x, Wq, Wk, Wv, elu_features, normalize=False),
            lambda x: kernel_attention_system(x, Wq, Wk, Wv, elu_features, normalize=False)),
        "selective SSM (S6)": (lambda x: selective_ssm(x, *ssm), lambda x: selective_ssm_system(x, *ssm)),
        "LTI SSM (S4D-like)": (lambda x: selective_ssm(x, *ssm, selective=False),
                               lambda x: selective_ssm_system(x, *ssm, selective=False)),
        "RG-LRU": (lambda x: rglru(x[None])[0], lambda x: rglru_system(rglru, x)),
        "gated linear RNN": (lambda x: gated_rnn(hgrn, x), lambda x: gated_rnn_system(hgrn, x)),
    }


def _same(first: tuple, second: tuple, tol: float = 1e-12) -> bool:
    return all(a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=tol))
               for a, b in zip(first, second))


def system_properties(system: System, other: System) -> dict:
    """What distinguishes the models (the DSF paper's comparison, section 3), read off the matrices of
    one input (`system`) and of another input of the same length (`other`): whether A_t changes with
    the input, whether it is diagonal, a multiple of the identity, the identity itself, and the state
    size N (the last step's; `state_grows`: N changes with t)."""
    square = all(a.shape[0] == a.shape[1] for a in system.A)
    diagonal = square and all(bool((a == torch.diag(torch.diagonal(a))).all()) for a in system.A)
    scalar = diagonal and all(bool((torch.diagonal(a) == a[0, 0]).all()) for a in system.A if a.numel())
    identity = scalar and all(bool((torch.diagonal(a) == 1).all()) for a in system.A[1:])
    sizes = {a.shape[0] for a in system.A}
    return {
        "A input-dependent": not _same(system.A, other.A),
        "B input-dependent": not _same(system.B, other.B),
        "C input-dependent": not _same(system.C, other.C),
        "A diagonal": diagonal,
        "A scalar (lambda I)": scalar,
        "A = I": identity,
        "state size N": system.A[-1].shape[0],
        "state grows": len(sizes) > 1,
    }
