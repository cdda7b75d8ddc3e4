"""Which model is which: attention, linear attention, selective SSMs and gated RNNs as one system.

Sieber et al. 2024, "Understanding the differences in Foundation Models: Attention, State Space Models,
and Recurrent Neural Networks" (arXiv:2405.15731). The Dynamical Systems Framework (section 2, eq. 1)
writes every token mixer as h_t = A_t h_{t-1} + B_t x_t, y_t = C_t h_t (+ D_t x_t); the models differ
only in the matrices (`course.ssm.framework`): softmax attention needs a state that grows with t (or an
infinite one, the Taylor features of exp, normalised by eta_t: section 3.1), linear attention a fixed
n d state with A_t = I (or eta_{t-1} / eta_t I, normalised), S6 a diagonal input-dependent A_t, its LTI
twin the same A at every step, the RG-LRU and a gated linear RNN a diagonal A_t of size d.

The claim (a demonstration: each number holds by construction, up to rounding) measures, in float64:
- the largest gap, over every model of `framework.MODELS`, between the usual form and the DSF
  recurrence, and between the recurrence and the convolutional form y = Phi x (eq. 2);
- the paper's Lemma relating S6 to linear attention (section 4.1): with A -> 0 (so A_t = I) S6 *is*
  unnormalised linear attention with queries C_t, keys B_t and values Delta_t x_t per channel;
- softmax attention approached by the normalised DSF with truncated Taylor features: the gap falls as
  the state (order P, n = sum_{p<=P} d_k^p features) grows, the paper's point that softmax attention's
  state is infinite and linear attention approaches it with state expansion (Figure 1).
"""
import torch

from course.checks import check_int
from course.claims import DEMONSTRATION, Claim
from course.ssm import framework as fw

T, WIDTH, STATE = 12, 4, 4
ORDERS = (2, 4, 8)


@torch.no_grad()
def model_table(seed: int = 0, T: int = T, d: int = WIDTH, n: int = STATE) -> list:
    """One row per model of `framework.MODELS` (`framework.system_properties` on two random inputs,
    plus `forms_gap`: max |usual form - DSF recurrence|), for the notebook's "which model is which"."""
    check_int("dynamical_systems.model_table", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    x, other = (torch.randn(T, d, generator=g, dtype=torch.float64) for _ in range(2))
    rows = []
    for name, (usual, dsf) in fw.model_zoo(d, n, seed).items():
        system = dsf(x)
        gap = float((usual(x) - fw.run_system(system)).abs().max())
        rows.append({"model": name, **fw.system_properties(system, dsf(other)), "forms_gap": gap})
    return rows


def s6_as_linear_attention(x, W_delta, b_delta, W_B, W_C):
    """S6 with A = 0 (A_t = I) written as unnormalised linear attention: per channel c,
    y_t[c] = sum_{s<=t} (C_t . B_s) Delta_s[c] x_s[c]. x [T, d] -> [T, d]."""
    delta, Bt, Ct = fw.selective_ssm_parts(x, W_delta, b_delta, W_B, W_C)
    scores = (Ct @ Bt.T) * fw.causal_mask(len(x))  # queries C_t, keys B_s
    return scores @ (delta * x)


@torch.no_grad()
def dynamical_systems_experiment(seed: int) -> dict:
    """The forms' gaps, the S6 / linear attention lemma and the Taylor approach to softmax."""
    check_int("dynamical_systems_experiment", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, WIDTH, generator=g, dtype=torch.float64)
    forms, conv = 0.0, 0.0
    for name, (usual, dsf) in fw.model_zoo(WIDTH, STATE, seed).items():
        system = dsf(x)
        y = fw.run_system(system)
        forms = max(forms, float((usual(x) - y).abs().max()))
        if name != "softmax attention (Taylor)":  # its dense state makes Phi slow; checked in tests
            Phi = fw.convolution_kernel(system)
            conv = max(conv, float((torch.einsum("iajb,jb->ia", Phi, system.x) - y).abs().max()))
    weights = [0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)
               for shape in ((WIDTH, WIDTH), (WIDTH,), (STATE, WIDTH), (STATE, WIDTH))]
    A_zero = torch.full((WIDTH, STATE), -1e-300, dtype=torch.float64)  # exp(Delta A) == 1 exactly
    s6 = fw.selective_ssm(x, A_zero, *weights, None)
    lemma = float((s6 - s6_as_linear_attention(x, *weights)).abs().max())
    Wq, Wk, Wv = (torch.randn(WIDTH, WIDTH, generator=g, dtype=torch.float64) / WIDTH for _ in range(3))
    softmax = fw.softmax_attention(x, Wq, Wk, Wv)
    taylor = {}
    for P in ORDERS:
        y = fw.kernel_attention_recurrent(x, Wq, Wk, Wv, lambda z, P=P: fw.taylor_features(z, P))
        taylor[P] = float((y - softmax).abs().max())
    return {"forms_gap": forms, "convolution_gap": conv, "s6_linear_attention_gap": lemma,
            **{f"taylor_gap_order_{P}": taylor[P] for P in ORDERS},
            "taylor_gap_ratio": taylor[ORDERS[0]] / max(taylor[ORDERS[-1]], 1e-300),
            "taylor_state_order_8": float(sum(WIDTH ** p for p in range(9)) * WIDTH)}


CLAIM = Claim(
    paper="Sieber et al. 2024",
    citation="Understanding the differences in Foundation Models (arXiv:2405.15731), sections 2-4, "
             "eqs. (1)-(2), the S6 / linear attention comparison and Figure 1",
    statement="softmax attention, linear attention, selective SSMs and gated linear RNNs are all the one "
              "linear time-varying recurrence h_t = A_t h_{t-1} + B_t x_t, y_t = C_t h_t, differing only "
              "in A_t, B_t, C_t; S6 with A_t = I is linear attention; softmax attention needs an infinite "
              "state, approached as the state grows",
    kind=DEMONSTRATION,
    experiment=dynamical_systems_experiment,
    thresholds=("forms_gap <= 1e-10", "convolution_gap <= 1e-10", "s6_linear_attention_gap <= 1e-10",
                "taylor_gap_ratio >= 100"),
    summary=lambda m: (f"usual form vs DSF recurrence: max gap {m['forms_gap']:.1e} over every model; "
                       f"S6 with A = 0 vs linear attention {m['s6_linear_attention_gap']:.1e}; softmax vs "
                       f"Taylor-feature DSF {m['taylor_gap_order_2']:.1e} (order 2) -> "
                       f"{m['taylor_gap_order_8']:.1e} (order 8, state {m['taylor_state_order_8']:.0f})"),
    note="By construction (float64 rounding). The Taylor features stand in for exp's infinite feature "
         "map; the paper's measured finding (linear attention nears softmax on MQAR as n grows) is not "
         "re-trained here.",
)
