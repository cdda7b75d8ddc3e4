"""Griffin (De et al. 2024, "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient
Language Models", arXiv:2402.19427): the RG-LRU recurrence (section 2.4) and local attention (section
2.3) in one residual stack, against a recurrence-only stack (Hawk) and a local-attention-only stack.

The toy: one batch mixing two tasks (`course.ssm.tasks.mixture`): associative recall of 2 key-value
pairs (exact retrieval of recent tokens, what attention does well and a small recurrent state does
approximately), and a long-range class token 15 positions back (beyond what two layers of window-4
attention can reach, what a recurrence carries). Three 2-layer models of width 16, parameters matched
to within 4% (the recurrent block with E = D and block-diagonal gates has 4 D^2 weights, as many as
attention's q, k, v, o): Griffin "RA", Hawk "RR", local attention "AA". The paper's point (section 6,
Figure 5 and the retrieval results of Table 4) is that the mix beats each alone at equal size.

The layers are `course.ssm.layers` (RGLRU, LocalAttention, GriffinBlock, GriffinModel).
"""
import functools

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.metrics import parameter_count
from course.ssm.layers import GriffinModel
from course.ssm.tasks import associative_recall, long_range, mixture, train_sequence_model
from course.train import one_thread, seeded

T, WIDTH, WINDOW, STEPS, LR, BATCH = 16, 16, 4, 80, 0.03, 64
PATTERNS = {"griffin": "RA", "hawk": "RR", "local_attention": "AA"}


def recall_and_long_range(n: int, seed: int):
    """Half associative recall (2 pairs, 4 keys, 4 values), half long-range (class 15 tokens back)."""
    check_int("ssm.griffin.recall_and_long_range", "n", n, low=2)
    return mixture(associative_recall(n - n // 2, 2, seed, keys=4, values=4),
                   long_range(n // 2, T, seed + 7, classes=4, noise=4), seed)


VOCAB = recall_and_long_range(2, 0).vocab


def model(pattern: str, seed: int) -> GriffinModel:
    """A 2-layer GriffinModel of width 16, window 4, initialised from `seed`."""
    with seeded(seed):
        return GriffinModel(VOCAB, WIDTH, pattern, window=WINDOW)


@functools.lru_cache(maxsize=3)
@one_thread()
def griffin_experiment(seed: int) -> dict:
    """Held-out accuracy of Griffin, Hawk and local attention on the mixed task, and their sizes."""
    out = {}
    for name, pattern in PATTERNS.items():
        net = model(pattern, seed)
        out[f"{name}_accuracy"] = train_sequence_model(net, recall_and_long_range, STEPS, LR, seed,
                                                       batch=BATCH)
        out[f"{name}_parameters"] = float(parameter_count(net))
    out["margin_over_best_single"] = out["griffin_accuracy"] - max(out["hawk_accuracy"],
                                                                    out["local_attention_accuracy"])
    sizes = [out[f"{name}_parameters"] for name in PATTERNS]
    out["size_spread"] = max(sizes) / min(sizes) - 1
    return out


CLAIM = Claim(
    paper="De et al. 2024",
    citation="Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models "
             "(arXiv:2402.19427), sections 2.3-2.4 and 6 (Griffin against Hawk and local attention)",
    statement="a stack mixing the RG-LRU recurrence with local attention beats a recurrence-only stack "
              "(Hawk) and a local-attention-only stack of the same size on a task needing both exact "
              "recall and long-range memory",
    kind=REPRODUCTION,
    experiment=griffin_experiment,
    thresholds=("margin_over_best_single >= 0.03", "size_spread <= 0.05"),
    summary=lambda m: (
        f"held-out accuracy: Griffin {m['griffin_accuracy']:.3f}, Hawk {m['hawk_accuracy']:.3f}, local "
        f"attention {m['local_attention_accuracy']:.3f} (sizes within {100 * m['size_spread']:.1f}%); "
        f"margin over the better single kind {m['margin_over_best_single']:+.3f}"),
    held_on=(0, 1),
    note="2-layer width-16 models, 80 Adam steps, on a toy mixing 2-pair recall and a 15-token-back class "
         "token; the paper's evidence is language modelling and retrieval at scale. Holds on seeds 0 and 1 "
         "(Griffin ahead by 0.16 and 0.22); on seed 2 Hawk edges Griffin (0.586 against 0.559): at this "
         "budget the training is short enough that one seed's recurrence-only run can win.",
)
