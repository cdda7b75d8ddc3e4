"""PGN: the Historical Information Extraction layer and its gate, against a GRU on long-period series.

Jia, Lin, Yu, Wang, Liu and Wan 2024, "PGN: The RNN's New Successor is Effective for Long-Range Time
Series Forecasting" (arXiv:2409.17703), section 3. A Parallel Gated Network replaces the recurrence
h_t = f(h_{t-1}, x_t) by two parallel steps:

- the Historical Information Extraction (HIE) layer: a linear layer over the zero-padded window of every
  earlier input, h_t = sum_{j=1..K} W_j x_{t-j} (one weight per lag and channel here): a causal long
  convolution, computed as a lower-triangular Toeplitz product or with the FFT, never step by step;
- a gate that selects and fuses the history with the current input:
  g_t = sigmoid(W_g [x_t; h_t]), c_t = tanh(W_c [x_t; h_t]), o_t = g_t * h_t + (1 - g_t) * c_t.

Every input reaches o_t through one weight W_{t-s}: the information path is O(1) long, where an RNN's
is t - s steps through the recurrence. Here (`pgn_experiment`, a reproduction) both forecast the next
HORIZON values of series that repeat a random pattern of PERIOD steps (plus noise) from the last
WINDOW values: the forecast x_{T+h} is x_{T+h-PERIOD}, a lag the HIE layer reads directly and a GRU
must carry through PERIOD recurrent steps. PGN is compared with a GRU of about the same size.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_shape, check_tensor
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count, relative_mse
from course.train import DecayingAdam, fit, seeded

PERIOD, WINDOW, HORIZON, NOISE = 16, 32, 8, 0.1
WIDTH, GRU_WIDTH = 32, 29  # 5512 and 5518 parameters
STEPS, BATCH, LR = 60, 32, 0.01


def check_hie_args(where: str, x: torch.Tensor, kernel: torch.Tensor):
    """x [B, T, D] float, kernel [K, D] float (row j - 1 weighs lag j)."""
    check_tensor(where, "x", x, ndim=3, kind="float")
    check_tensor(where, "kernel", kernel, ndim=2, kind="float")
    check_shape(where, "kernel", kernel, (kernel.shape[0], x.shape[2]), "[K, D]")


def hie_loop(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """HIE (section 3.1) by its definition, position by position: h_t = sum_{j=1..min(K, t)} W_j x_{t-j}.
    x [B, T, D], kernel [K, D] -> h [B, T, D]."""
    check_hie_args("hie_loop", x, kernel)
    h = torch.zeros_like(x)
    for t in range(x.shape[1]):
        for j in range(1, min(kernel.shape[0], t) + 1):
            h[:, t] = h[:, t] + kernel[j - 1] * x[:, t - j]
    return h


def hie_toeplitz(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """HIE as one product with the strictly lower-triangular Toeplitz matrix M[t, s, d] = W_{t-s, d}
    (the padded sliding-window linear layer, all positions at once). [B, T, D], [K, D] -> [B, T, D]."""
    check_hie_args("hie_toeplitz", x, kernel)
    T, K = x.shape[1], kernel.shape[0]
    lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # [T, T]
    padded = torch.cat([kernel.new_zeros(1, kernel.shape[1]), kernel,
                        kernel.new_zeros(max(T - K, 0), kernel.shape[1])])  # lag 0 .. max(T, K)
    M = padded[lag.clamp(0, padded.shape[0] - 1)] * ((lag >= 1) & (lag <= K))[..., None]  # [T, T, D]
    return torch.einsum("tsd,bsd->btd", M, x)


def hie_fft(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """HIE as a causal long convolution computed with the FFT in O(T log T) (zero-padded to 2T so the
    circular convolution is a linear one). [B, T, D], [K, D] -> [B, T, D]."""
    check_hie_args("hie_fft", x, kernel)
    T = x.shape[1]
    k = kernel[:T]
    taps = torch.cat([k.new_zeros(1, k.shape[1]), k])  # tap 0 (the current input) is 0
    n = 2 * T
    spectrum = torch.fft.rfft(x, n=n, dim=1) * torch.fft.rfft(taps, n=n, dim=0)[None]
    return torch.fft.irfft(spectrum, n=n, dim=1)[:, :T]


class PGNLayer(nn.Module):
    """HIE over the last `K` inputs, then the gate of section 3.2. x [B, T, D] -> o [B, T, D]."""

    def __init__(self, D: int, K: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(K, D) / K)
        self.gate = nn.Linear(2 * D, D)
        self.candidate = nn.Linear(2 * D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = hie_fft(x, self.kernel)
        both = torch.cat([x, h], -1)
        g = torch.sigmoid(self.gate(both))
        return g * h + (1 - g) * torch.tanh(self.candidate(both))


class PGNForecaster(nn.Module):
    """y [B, L] -> forecast [B, H]: a scalar embedding, one PGN layer over the window, and a linear
    head on the last position's output."""

    def __init__(self, D: int, L: int, H: int):
        super().__init__()
        self.embed, self.pgn, self.head = nn.Linear(1, D), PGNLayer(D, L), nn.Linear(D, H)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.pgn(self.embed(y[..., None]))[:, -1])


class GRUForecaster(nn.Module):
    """The recurrent baseline: the same embedding and head around a GRU. y [B, L] -> [B, H]."""

    def __init__(self, D: int, H: int):
        super().__init__()
        self.embed, self.gru, self.head = nn.Linear(1, D), nn.GRU(D, D, batch_first=True), nn.Linear(D, H)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(self.embed(y[..., None]))[0][:, -1])


def periodic_series(n: int, period: int = PERIOD, window: int = WINDOW, horizon: int = HORIZON,
                    noise: float = NOISE, seed: int = 0) -> tuple:
    """Series repeating a random N(0, 1) pattern of `period` steps from a random phase, plus noise:
    (inputs [n, window], targets [n, horizon]), the targets noise-free."""
    check_int("periodic_series", "n", n, low=1)
    check_int("periodic_series", "period", period, low=1)
    check_int("periodic_series", "horizon", horizon, low=1)
    check_int("periodic_series", "window", window, low=period)
    g = torch.Generator().manual_seed(seed)
    pattern = torch.randn(n, period, generator=g)
    phase = torch.randint(period, (n, 1), generator=g)
    clean = pattern.gather(1, (phase + torch.arange(window + horizon)) % period)
    inputs = clean[:, :window] + noise * torch.randn(n, window, generator=g)
    return inputs, clean[:, window:]


def train_forecaster(model: nn.Module, seed: int) -> float:
    """STEPS Adam steps on fresh batches; the relative MSE on 512 held-out series."""
    x, y = periodic_series(STEPS * BATCH, seed=seed)
    step = [0]

    def loss():
        rows = slice(step[0] * BATCH, (step[0] + 1) * BATCH)
        step[0] += 1
        return F.mse_loss(model(x[rows]), y[rows])

    fit(model.parameters(), loss, STEPS, LR, seed=seed, optimizer=DecayingAdam, total=STEPS)
    x_test, y_test = periodic_series(512, seed=seed + 1_000_003)
    with torch.no_grad():
        return relative_mse(model(x_test), y_test)


@functools.lru_cache(maxsize=3)
def pgn_experiment(seed: int) -> dict:
    """PGN and a GRU of about the same size, forecasting long-period series."""
    check_int("pgn_experiment", "seed", seed, low=0)
    with seeded(seed):
        pgn = PGNForecaster(WIDTH, WINDOW, HORIZON)
    with seeded(seed):
        gru = GRUForecaster(GRU_WIDTH, HORIZON)
    pgn_mse, gru_mse = train_forecaster(pgn, seed), train_forecaster(gru, seed)
    return {"pgn_mse": pgn_mse, "gru_mse": gru_mse, "gru_over_pgn": gru_mse / pgn_mse,
            "pgn_params": float(parameter_count(pgn)), "gru_params": float(parameter_count(gru))}


CLAIM = Claim(
    paper="Jia et al. 2024",
    citation="PGN: The RNN's New Successor is Effective for Long-Range Time Series Forecasting "
             "(arXiv:2409.17703), section 3 (the HIE layer and gate, an O(1) information path)",
    statement="a Parallel Gated Network, reading the whole history through its HIE layer, forecasts "
              "long-range periodic series better than a recurrent network of the same size",
    kind=REPRODUCTION,
    experiment=pgn_experiment,
    thresholds=("gru_over_pgn >= 1.5", "pgn_mse <= 0.5"),
    summary=lambda m: (
        f"relative test MSE {m['pgn_mse']:.3f} for PGN ({m['pgn_params']:.0f} parameters) against "
        f"{m['gru_mse']:.3f} for a GRU ({m['gru_params']:.0f}): {m['gru_over_pgn']:.2g}x lower"),
    note=f"One PGN layer (TPGN's patch branch left out) on series of period {PERIOD}, window {WINDOW}, "
         f"horizon {HORIZON}; {STEPS} Adam steps of {BATCH} series each.",
)
