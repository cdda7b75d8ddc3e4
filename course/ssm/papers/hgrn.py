"""HGRN (Qin et al. 2023, "Hierarchically Gated Recurrent Neural Network for Sequence Modeling",
arXiv:2311.04823): forget gates with learnable lower bounds that rise with depth (section 3), so that
upper layers keep long-range information while lower layers stay free to forget.

The toy: `course.ssm.tasks.long_range` (a class token 15 positions back among noise tokens, asked at
the end). Two 3-layer HGRN models of width 16, identical but for the lower bounds: the cumulative
softmax bounds of the paper, against bounds fixed at 0 (the paper's ablation, Table 7). They differ in
size only by the 48 entries of Gamma. The layers are `course.ssm.layers` (HGRNLayer, HGRNModel).
"""
import functools

from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.ssm.layers import HGRNModel
from course.ssm.tasks import long_range, train_sequence_model
from course.train import one_thread, seeded

T, WIDTH, LAYERS, STEPS, LR, BATCH = 16, 16, 3, 80, 0.03, 32


def far_class(n: int, seed: int):
    """The class token at the first of T = 16 positions (15 back), 4 classes, 8 noise kinds."""
    return long_range(n, T, seed)


VOCAB = far_class(1, 0).vocab


def model(lower_bounds: bool, seed: int) -> HGRNModel:
    with seeded(seed):
        return HGRNModel(VOCAB, WIDTH, LAYERS, lower_bounds=lower_bounds)


@functools.lru_cache(maxsize=3)
@one_thread()
def hgrn_experiment(seed: int) -> dict:
    """Held-out accuracy with and without the rising lower bounds, and the trained bounds per layer."""
    out = {}
    for name, bounds in (("with_bounds", True), ("without_bounds", False)):
        net = model(bounds, seed)
        out[f"{name}_accuracy"] = train_sequence_model(net, far_class, STEPS, LR, seed, batch=BATCH)
        out[f"{name}_parameters"] = float(parameter_count(net))
        if bounds:
            gamma = net.lower_bounds().detach().mean(1)
            out.update({f"mean_lower_bound_layer_{k}": float(g) for k, g in enumerate(gamma)})
    out["gain"] = out["with_bounds_accuracy"] - out["without_bounds_accuracy"]
    return out


CLAIM = Claim(
    paper="Qin et al. 2023",
    citation="Hierarchically Gated Recurrent Neural Network for Sequence Modeling (arXiv:2311.04823), "
             "section 3 (forget gates with lower bounds rising with depth) and the ablation of Table 7",
    statement="forget-gate lower bounds that rise with layer depth help a gated linear RNN with "
              "long-range dependence, against the same model with the bounds fixed at 0",
    kind=REPRODUCTION,
    experiment=hgrn_experiment,
    thresholds=("gain >= 0.05",),
    summary=lambda m: (
        f"held-out accuracy on a class token 15 steps back: {m['with_bounds_accuracy']:.3f} with rising "
        f"lower bounds (trained means {m['mean_lower_bound_layer_0']:.2f}, "
        f"{m['mean_lower_bound_layer_1']:.2f}, {m['mean_lower_bound_layer_2']:.2f}), "
        f"{m['without_bounds_accuracy']:.3f} without; gain {m['gain']:+.3f}"),
    held_on=(0,),
    note="Holds on seed 0 only (1.00 against 0.24); on seed 1 neither model leaves chance in 80 steps "
         "(0.24 both), and on seed 2 the model without bounds wins (1.00 against 0.52). At a budget of 80 "
         "steps the toy decides which runs escape chance more than the bounds do; the rising bounds do "
         "train as the paper says (about 0, 0.34, 0.67 by layer). "
         "3-layer width-16 real-valued HGRN (the complex phase dropped), 80 Adam steps, on one synthetic "
         "long-range toy; the paper's evidence is language modelling and Long Range Arena.",
)
