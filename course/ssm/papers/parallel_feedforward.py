"""An RNN's forward pass as a nonlinear system solved in parallel: Jacobi and Gauss-Seidel sweeps.

Song, Meng, Liao and Ermon 2021, "Accelerating Feedforward Computation via Parallel Nonlinear
Equation Solving" (ICML 2021, arXiv:2002.03629). Section 3: a feedforward computation
s_t = f_t(s_{1:t-1}) for t = 1..T is the system of T equations s_t - f_t(s_{1:t-1}) = 0, solved by a
fixed-point iteration from any initial guess. *Jacobi* (eq. 3-4) updates every position at once from
the previous sweep's values, s_t^{k+1} = f_t(s_{1:t-1}^k); *Gauss-Seidel* (eq. 5) uses the newest
values, which sweeping t = 1..T in order makes the ordinary sequential pass. Proposition 1: Jacobi
reaches the exact solution in at most T sweeps, since after k sweeps the first k positions are exact
(they no longer depend on the initial guess); the point of the paper is that it usually gets there,
to floating-point tolerance, in far fewer. Here f is one step of an Elman RNN
x_t = tanh(W x_{t-1} + U u_t + b) (x_0 = 0), and a block Gauss-Seidel (the paper's hybrid
"Jacobi-GS", section 3.2) runs Jacobi inside each block of positions, the blocks in order.
"""
import torch

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim

HIDDEN, INPUTS, T = 16, 4, 256
NORM = 0.5  # spectral norm of W: the step is a contraction of the state (tanh is 1-Lipschitz)
TOL = 1e-12  # a sweep that changes no value by more than this ends the iteration (float64)


def rnn_step(x_prev: torch.Tensor, u: torch.Tensor, W, U, b) -> torch.Tensor:
    """f(x_{t-1}, u_t) = tanh(W x_{t-1} + U u_t + b), for x_prev [..., H], u [..., I] -> [..., H]."""
    return torch.tanh(x_prev @ W.T + u @ U.T + b)


def check_sequence(where: str, u: torch.Tensor, W):
    check_tensor(where, "u", u, ndim=3, kind="float")
    if u.shape[1] < 1:
        raise ValueError(f"{where}: `u` must have at least one time step; got shape {tuple(u.shape)}.")
    if W.shape[0] != W.shape[1]:
        raise ValueError(f"{where}: `W` must be square [H, H]; got shape {tuple(W.shape)}.")


def sequential(u: torch.Tensor, W, U, b) -> torch.Tensor:
    """The ordinary forward pass: x [B, T, H] from u [B, T, I], x_0 = 0 (T sequential steps)."""
    check_sequence("parallel_feedforward.sequential", u, W)
    x, out = u.new_zeros(u.shape[0], W.shape[0]), []
    for t in range(u.shape[1]):
        x = rnn_step(x, u[:, t], W, U, b)
        out.append(x)
    return torch.stack(out, 1)


def jacobi_sweep(x: torch.Tensor, u: torch.Tensor, W, U, b) -> torch.Tensor:
    """One Jacobi sweep (eq. 4): every position t updated at once from the previous iterate,
    x_t <- f(x_{t-1}, u_t), with x_0 = 0. x [B, T, H], u [B, T, I] -> [B, T, H]."""
    previous = torch.cat([x.new_zeros(x.shape[0], 1, x.shape[2]), x[:, :-1]], 1)
    return rnn_step(previous, u, W, U, b)


def jacobi(u: torch.Tensor, W, U, b, sweeps: int | None = None, tol: float = TOL):
    """Jacobi iteration from the guess x = 0: -> (x [B, T, H], sweeps done). Runs `sweeps` sweeps if
    given, else until a sweep changes nothing by more than `tol` (at most T + 1 sweeps: the (T+1)-th
    only confirms the exact T-th, Prop. 1)."""
    check_sequence("parallel_feedforward.jacobi", u, W)
    x = u.new_zeros(u.shape[0], u.shape[1], W.shape[0])
    if sweeps is not None:
        check_int("parallel_feedforward.jacobi", "sweeps", sweeps, low=0)
        for _ in range(sweeps):
            x = jacobi_sweep(x, u, W, U, b)
        return x, sweeps
    for k in range(1, u.shape[1] + 2):
        new = jacobi_sweep(x, u, W, U, b)
        change = float((new - x).abs().max())
        x = new
        if change <= tol:
            return x, k
    return x, u.shape[1] + 1


def block_gauss_seidel(u: torch.Tensor, W, U, b, block: int, tol: float = TOL):
    """Jacobi-GS (sec. 3.2): blocks of `block` positions in order, Jacobi inside each block until it
    settles (or n sweeps, exact for n positions), using the finished blocks' values.
    -> (x [B, T, H], total parallel sweeps). block = 1 is the sequential pass (T sweeps); block = T is
    Jacobi."""
    check_sequence("parallel_feedforward.block_gauss_seidel", u, W)
    check_int("parallel_feedforward.block_gauss_seidel", "block", block, low=1)
    x = u.new_zeros(u.shape[0], u.shape[1], W.shape[0])
    total = 0
    for start in range(0, u.shape[1], block):
        stop = min(start + block, u.shape[1])
        for _ in range(stop - start):  # a block of n positions is exact after n sweeps (Prop. 1)
            previous = torch.cat([x[:, start - 1:start] if start else x.new_zeros(x.shape[0], 1, x.shape[2]),
                                  x[:, start:stop - 1]], 1)
            new = rnn_step(previous, u[:, start:stop], W, U, b)
            change = float((new - x[:, start:stop]).abs().max())
            x = torch.cat([x[:, :start], new, x[:, stop:]], 1)
            total += 1
            if change <= tol:
                break
    return x, total


def contracting_rnn(seed: int, hidden: int = HIDDEN, inputs: int = INPUTS, norm: float = NORM,
                    dtype=torch.float64):
    """A random Elman RNN (W [H, H] with spectral norm `norm`, U [H, I], b [H]) and inputs u [4, T, I]."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(hidden, hidden, generator=g, dtype=dtype)
    W = norm * W / torch.linalg.matrix_norm(W, ord=2)
    U = torch.randn(hidden, inputs, generator=g, dtype=dtype) / inputs ** 0.5
    b = 0.1 * torch.randn(hidden, generator=g, dtype=dtype)
    u = torch.randn(4, T, inputs, generator=g, dtype=dtype)
    return u, W, U, b


def sweeps_experiment(seed: int) -> dict:
    """Sweeps to tolerance for Jacobi and block Gauss-Seidel (blocks of 16) against T sequential steps
    on a random contracting RNN; also an expansive one (||W|| = 3) for contrast."""
    u, W, U, b = contracting_rnn(seed)
    exact = sequential(u, W, U, b)
    x, k = jacobi(u, W, U, b)
    xg, kg = block_gauss_seidel(u, W, U, b, block=16)
    ue, We, Ue, be = contracting_rnn(seed, norm=3.0)
    _, k_expansive = jacobi(ue, We, Ue, be)
    return {"T": T, "jacobi_sweeps": k, "sweeps_over_T": k / T,
            "jacobi_error": float((x - exact).abs().max()),
            "gauss_seidel_sweeps": kg, "gauss_seidel_error": float((xg - exact).abs().max()),
            "expansive_jacobi_sweeps": k_expansive}


CLAIM = Claim(
    paper="Song et al. 2021",
    citation="Accelerating Feedforward Computation via Parallel Nonlinear Equation Solving "
             "(arXiv:2002.03629), sections 3.1-3.2 (Jacobi, Gauss-Seidel, Prop. 1) and 4",
    statement="solving all T steps of a recurrent forward pass at once by Jacobi iteration gives the same "
              "output as the sequential pass in far fewer than T parallel sweeps",
    kind=REPRODUCTION,
    experiment=sweeps_experiment,
    thresholds=("sweeps_over_T <= 0.5", "jacobi_error <= 1e-10"),
    note="A random RNN whose step is a contraction (||W||_2 = 0.5, float64, T = 256): the error after k "
         "sweeps shrinks like 0.5^k whatever T is, so the sweep count is set by the tolerance, not by T. "
         "Sweeps are counted, not timed: on a CPU a sweep costs T times a step. With ||W||_2 = 3 the "
         "count (reported) is set by how the tanh saturates, not guaranteed small.",
    summary=lambda m: (f"Jacobi: {m['jacobi_sweeps']:.0f} sweeps for T = {m['T']:.0f} "
                       f"(max error {m['jacobi_error']:.1g}); block Gauss-Seidel (16): "
                       f"{m['gauss_seidel_sweeps']:.0f}; expansive W: {m['expansive_jacobi_sweeps']:.0f}"),
)
