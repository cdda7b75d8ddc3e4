"""Cyclical curriculum learning: the training set's size cycles between an easy subset and the full data.

Kesgin and Amasyali 2022, "Cyclical Curriculum Learning" (arXiv:2202.05531, IEEE TNNLS 2023), the method.
Each training example gets a difficulty score, its loss under a model trained on the data (here a
*probe*: the same MLP trained briefly, without a curriculum). Epoch e trains on the p_e N easiest
examples, where the fraction p_e moves cyclically: up from a start fraction to the whole set, and back
down (`cyclical_fractions`), so curriculum epochs (small, easy subsets) and vanilla epochs (all the
data) alternate. Training takes as many epochs as the vanilla run's, so it makes fewer steps. The paper
finds it beats vanilla training (and plain curriculum or anti-curriculum) on 18 data sets and 15
architectures, and argues theoretically that alternating the two errs less than either alone.

The toy (`cyclical_curriculum_experiment`): three spiral arms with 30% of the training labels replaced
by another class (test labels clean), where the loss-ranked easy subsets leave most of the flipped
labels out. The same MLP, from the same initialisation and with the same optimiser, is trained for the
same number of epochs with and without the cycle; measured is the test accuracy at the end, against
the abstract's claim that the cyclical curriculum does better (here: at least as well). Also measured,
with no threshold: vanilla training stopped at the cyclical run's number of steps.
"""
import copy
import functools

import torch
import torch.nn.functional as F

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.landscape.models import mlp
from course.landscape.tasks import evaluate, spirals
from course.train import fit

WIDTHS = (2, 32, 32, 3)
LABEL_NOISE = 0.3
EPOCHS = 40
BATCH = 40
LR = 0.01
PROBE_STEPS = 100
START_FRACTION = 0.25  # the smallest subset of a cycle, easiest first
PERIOD = 8  # epochs per cycle: up from START_FRACTION to 1 and back


def noisy_labels(labels: torch.Tensor, classes: int, rate: float, g: torch.Generator):
    """labels [N] with a fraction `rate` replaced by a different class, and the mask [N] of those."""
    check_tensor("noisy_labels", "labels", labels, ndim=1, kind="int")
    if not 0 <= rate <= 1:
        raise ValueError(f"noisy_labels: `rate` must be in [0, 1]; got {rate}.")
    flipped = torch.rand(len(labels), generator=g) < rate
    shift = torch.randint(1, classes, (len(labels),), generator=g)
    return torch.where(flipped, (labels + shift) % classes, labels), flipped


def cyclical_fractions(epochs: int, start: float = START_FRACTION, period: int = PERIOD) -> list:
    """p_e for e = 0 .. epochs-1: a triangle wave from `start` up to 1 and back, `period` epochs a cycle
    (the paper's cyclical data size)."""
    check_int("cyclical_fractions", "epochs", epochs, low=1)
    check_int("cyclical_fractions", "period", period, low=2)
    if not 0 < start <= 1:
        raise ValueError(f"cyclical_fractions: `start` must be in (0, 1]; got {start}.")
    half = period / 2
    return [start + (1 - start) * (1 - abs((e % period) - half) / half) for e in range(epochs)]


def difficulty_scores(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The per-example loss [N] of the probe model: higher is harder."""
    with torch.no_grad():
        return F.cross_entropy(model(x), labels, reduction="none")


def epoch_batches(order: torch.Tensor, fractions: list, batch: int, g: torch.Generator) -> list:
    """The mini-batches (index tensors) of every epoch: epoch e shuffles the ceil(p_e N) first examples
    of `order` (easiest first) and cuts them into batches of `batch`."""
    batches = []
    for p in fractions:
        subset = order[:max(1, int(round(p * len(order))))]
        subset = subset[torch.randperm(len(subset), generator=g)]
        batches.extend(subset.split(batch))
    return batches


def train_on_batches(model: torch.nn.Module, x, labels, batches: list, seed: int,
                     snapshot_at: int | None = None):
    """Adam on the given mini-batches, one step each, through `course.train.fit`; returns a copy of the
    model as it was after `snapshot_at` steps (None if not asked)."""
    it, step, snapshot = iter(batches), [0], [None]

    def loss():
        if step[0] == snapshot_at:
            snapshot[0] = copy.deepcopy(model)
        step[0] += 1
        rows = next(it)
        return F.cross_entropy(model(x[rows]), labels[rows])

    fit(model.parameters(), loss, len(batches), LR, seed=seed, optimizer=torch.optim.Adam)
    return snapshot[0]


@functools.lru_cache(maxsize=3)
def noisy_task(seed: int):
    """(task, noisy training labels [N], flipped mask [N]) of the spiral task with LABEL_NOISE."""
    task = spirals(n_train=400, n_test=600, noise=0.04, seed=seed)
    noisy, flipped = noisy_labels(task.y_train, task.classes, LABEL_NOISE,
                                  torch.Generator().manual_seed(1000 + seed))
    return task, noisy, flipped


def cyclical_curriculum_experiment(seed: int) -> dict:
    """Final clean test accuracy of vanilla and cyclical-curriculum training, same epochs and init."""
    check_int("cyclical_curriculum_experiment", "seed", seed, low=0)
    task, noisy, flipped = noisy_task(seed)
    x = task.x_train
    probe = mlp(WIDTHS, seed=seed + 100)
    fit(probe.parameters(), lambda: F.cross_entropy(probe(x), noisy), PROBE_STEPS, LR, seed=seed)
    order = difficulty_scores(probe, x, noisy).argsort()  # easiest first
    fractions = cyclical_fractions(EPOCHS)
    g = torch.Generator().manual_seed(seed)
    plans = {"vanilla": epoch_batches(order, [1.0] * EPOCHS, BATCH, g),
             "cyclical": epoch_batches(order, fractions, BATCH, g)}
    m, early = {}, {}
    for name, batches in plans.items():
        model = mlp(WIDTHS, seed=seed)
        early[name] = train_on_batches(model, x, noisy, batches, seed, snapshot_at=len(plans["cyclical"]))
        m[f"{name}_accuracy"] = evaluate(model, task.x_test, task.y_test)[1]
        m[f"{name}_steps"] = float(len(batches))
    m["vanilla_same_steps_accuracy"] = evaluate(early["vanilla"], task.x_test, task.y_test)[1]
    easiest = order[:int(round(START_FRACTION * len(order)))]
    m["flipped_in_easiest"] = float(flipped[easiest].float().mean())
    m["flipped_overall"] = float(flipped.float().mean())
    m["accuracy_gain"] = m["cyclical_accuracy"] - m["vanilla_accuracy"]
    return m


CLAIM = Claim(
    paper="Kesgin and Amasyali 2022",
    citation="Cyclical Curriculum Learning (arXiv:2202.05531): the method (the data size cycled between "
             "curriculum subsets and the full set) and the experiments (18 data sets, 15 architectures)",
    statement="cycling the training-set size between easy subsets (ranked by a model's loss) and the "
              "full data gives better results than vanilla training",
    kind=REPRODUCTION,
    experiment=cyclical_curriculum_experiment,
    thresholds=("accuracy_gain >= 0",),
    held_on=(0,),
    note="Holds on seed 0 only: the cyclical curriculum's clean test accuracy is 0.928, 0.893, 0.865 "
         "against vanilla's 0.927, 0.918, 0.963 on seeds 0, 1, 2 (gains +0.002, -0.025, -0.098). The "
         "probe's easy subsets do leave the flipped labels out (none among the easiest 25%), but the "
         "cycle makes 275 steps to vanilla's 400 in the same 40 epochs, and vanilla is still improving "
         "there; stopped at 275 steps vanilla reaches 0.923, 0.895, 0.930, so on seed 2 the curriculum "
         "is behind at equal steps too. The easiest quarter is not a representative sample of the task "
         "(its classes are 34/54/12 on seed 0; 70% of it lies beyond radius 0.6 on seed 2, where 42% of "
         "all points do), and the epochs spent on it move the boundary elsewhere. The paper trains image "
         "and text classifiers to convergence; this toy's budget does not.",
    summary=lambda m: (
        f"spirals with {LABEL_NOISE:.0%} flipped training labels, {EPOCHS} epochs: clean test accuracy "
        f"vanilla {m['vanilla_accuracy']:.3f} ({m['vanilla_steps']:.0f} steps), cyclical curriculum "
        f"{m['cyclical_accuracy']:.3f} ({m['cyclical_steps']:.0f} steps), gain {m['accuracy_gain']:+.3f} "
        f"(vanilla stopped at {m['cyclical_steps']:.0f} steps: {m['vanilla_same_steps_accuracy']:.3f}); "
        f"the easiest {START_FRACTION:.0%} hold {m['flipped_in_easiest']:.0%} flipped labels "
        f"(overall {m['flipped_overall']:.0%})"),
)
