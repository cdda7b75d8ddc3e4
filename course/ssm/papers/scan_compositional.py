"""SCAN: a recurrent network generalises across a random split, not to a new primitive's compositions.

Lake and Baroni 2018, "Generalization without systematicity: On the compositional skills of
sequence-to-sequence recurrent networks" (ICML 2018, arXiv:1711.00350). Section 2 defines SCAN, commands
in a small grammar ("jump", "walk", "run", "look"; "left"/"right" turn first; "twice"/"thrice" repeat;
"x and y" does x then y, "x after y" does y then x) mapped to action sequences. Experiment 1 (random
80/20 split): seq2seq RNNs are almost perfect. Experiment 3 ("add primitive jump"): "jump" appears in
training only on its own, with every other command; at test every composed command with "jump"; the
best models get about 1% of them right (0.08% for the overall-best).

Here a generated SCAN-like grammar (the brief's subset: no "opposite"/"around"/"turn"), and a tiny GRU
encoder whose final state is decoded per output position (a fixed-length output of OUT_LEN slots with
a padding action) -- a non-autoregressive stand-in for the paper's seq2seq decoder, to fit the budget.
"""
from functools import lru_cache
from itertools import product

import torch

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.train import DecayingAdam, fit, seeded

VERBS = {"jump": "JUMP", "walk": "WALK", "run": "RUN", "look": "LOOK"}
DIRECTIONS = {"": (), "left": ("LTURN",), "right": ("RTURN",)}
REPEATS = {"": 1, "twice": 2, "thrice": 3}
CONJUNCTIONS = ("and", "after")
WORDS = ("<pad>",) + tuple(VERBS) + ("left", "right", "twice", "thrice") + CONJUNCTIONS
ACTIONS = ("<pad>", "JUMP", "WALK", "RUN", "LOOK", "LTURN", "RTURN")
IN_LEN, OUT_LEN = 7, 12
HIDDEN, EMBED = 64, 16
STEPS, BATCH, LR = 250, 128, 0.01
JUMP_COPIES = 20  # the add-jump split shows the lone "jump" this many times (the paper oversamples it)


def phrase_actions(verb: str, direction: str, repeat: str) -> tuple:
    """[[verb direction repeat]] (Lake and Baroni 2018, Fig. 6 grammar): (turn, action) x repeat."""
    return (DIRECTIONS[direction] + (VERBS[verb],)) * REPEATS[repeat]


def phrases() -> list:
    """Every phrase as (words, actions): 4 verbs x 3 directions x 3 repeats = 36."""
    return [(tuple(w for w in (v, d, r) if w), phrase_actions(v, d, r))
            for v, d, r in product(VERBS, DIRECTIONS, REPEATS)]


def interpret(words) -> tuple:
    """The action sequence of a command (a sequence of words); raises ValueError outside the grammar."""
    words = tuple(words)
    for c in CONJUNCTIONS:
        if c in words:
            i = words.index(c)
            first, second = interpret(words[:i]), interpret(words[i + 1:])
            return first + second if c == "and" else second + first
    if not words or words[0] not in VERBS or len(words) > 3:
        raise ValueError(f"scan_compositional.interpret: not a command of the grammar: {' '.join(words)!r}.")
    rest = list(words[1:])
    direction = rest.pop(0) if rest and rest[0] in ("left", "right") else ""
    repeat = rest.pop(0) if rest and rest[0] in ("twice", "thrice") else ""
    if rest:
        raise ValueError(f"scan_compositional.interpret: not a command of the grammar: {' '.join(words)!r}.")
    return phrase_actions(words[0], direction, repeat)


def commands() -> list:
    """Every command with its actions: the 36 phrases and the 2 x 36^2 = 2592 conjunctions."""
    out = phrases()
    for (a, x), (b, y) in product(phrases(), repeat=2):
        out.append((a + ("and",) + b, x + y))
        out.append((a + ("after",) + b, y + x))
    return out


def encode(pairs) -> tuple:
    """(inputs [N, IN_LEN] word ids left-padded with 0, so a recurrent reader ends on the last word;
    targets [N, OUT_LEN] action ids right-padded with 0)."""
    x = torch.zeros(len(pairs), IN_LEN, dtype=torch.long)
    y = torch.zeros(len(pairs), OUT_LEN, dtype=torch.long)
    for i, (words, actions) in enumerate(pairs):
        x[i, IN_LEN - len(words):] = torch.tensor([WORDS.index(w) for w in words])
        y[i, :len(actions)] = torch.tensor([ACTIONS.index(a) for a in actions])
    return x, y


def split(name: str, seed: int) -> tuple:
    """(train pairs, test pairs). 'random': 80/20 of all commands; 'add_jump': train on every command
    without "jump" plus the lone "jump" (JUMP_COPIES times), test on every other command with "jump"."""
    every = commands()
    if name == "random":
        order = torch.randperm(len(every), generator=torch.Generator().manual_seed(seed)).tolist()
        cut = int(0.8 * len(every))
        return [every[i] for i in order[:cut]], [every[i] for i in order[cut:]]
    if name == "add_jump":
        lone = (("jump",), ("JUMP",))
        train = [p for p in every if "jump" not in p[0]] + [lone] * JUMP_COPIES
        return train, [p for p in every if "jump" in p[0] and p != lone]
    raise ValueError(f"scan_compositional.split: `name` must be 'random' or 'add_jump'; got {name!r}.")


class GRUReader(torch.nn.Module):
    """Embedding -> GRU over the left-padded command -> its last state ->
    logits [N, OUT_LEN, len(ACTIONS)], one action per output slot."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(len(WORDS), EMBED, padding_idx=0)
        self.gru = torch.nn.GRU(EMBED, HIDDEN, batch_first=True)
        self.decode = torch.nn.Sequential(torch.nn.Linear(HIDDEN, 2 * HIDDEN), torch.nn.ReLU(),
                                          torch.nn.Linear(2 * HIDDEN, OUT_LEN * len(ACTIONS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(self.embed(x))
        return self.decode(h[-1]).reshape(len(x), OUT_LEN, len(ACTIONS))


def exact_match(logits: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of commands whose every output slot is right (the paper's exact-sequence accuracy)."""
    return float((logits.argmax(-1) == y).all(1).float().mean())


@lru_cache(maxsize=8)
def trained_accuracy(name: str, seed: int) -> float:
    """Exact-match test accuracy of a GRUReader trained on the split (mini-batches of BATCH)."""
    check_int("scan_compositional.trained_accuracy", "seed", seed, low=0)
    train, test = split(name, seed)
    x, y = encode(train)
    g = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = GRUReader()

        def loss():
            i = torch.randint(len(x), (BATCH,), generator=g)
            return torch.nn.functional.cross_entropy(model(x[i]).flatten(0, 1), y[i].flatten())

        fit(model.parameters(), loss, STEPS, LR, seed=seed, optimizer=DecayingAdam, total=STEPS,
            progress=False)
    xt, yt = encode(test)
    with torch.no_grad():
        return exact_match(model(xt), yt)


def splits_experiment(seed: int) -> dict:
    return {"random_accuracy": trained_accuracy("random", seed),
            "add_jump_accuracy": trained_accuracy("add_jump", seed)}


CLAIM = Claim(
    paper="Lake and Baroni 2018",
    citation="Generalization without systematicity (arXiv:1711.00350), sections 2-3, experiments 1 "
             "(random split) and 3 (add primitive 'jump')",
    statement="a recurrent network is near perfect on a random split of SCAN commands but almost never "
              "right on the composed commands of a primitive ('jump') seen in training only on its own",
    kind=REPRODUCTION,
    experiment=splits_experiment,
    thresholds=("random_accuracy >= 0.9", "add_jump_accuracy <= 0.1"),
    held_on=(1,),
    note="The add-jump half holds on every seed (0, 0, 0.0009: the lone 'jump' is never composed), but "
         "the random split stays under the 0.9 set before running on seeds 0 and 2 (0.69, 0.93, 0.89): "
         "250 steps of batch 128 is short of what this reader needs, and the budget (some 2-3 s per seed "
         "on one loaded core already) leaves no room for more; a smaller GRU (32 units, batch 64) was "
         "tried for speed and fell to 0.14-0.36 on the random split. "
         "A SCAN-like subset (4 verbs, left/right, twice/thrice, and/after: 2628 commands), a GRU encoder "
         "with a per-slot decoder instead of the paper's autoregressive seq2seq, 250 Adam steps.",
    summary=lambda m: (f"exact-match test accuracy: random split {m['random_accuracy']:.2f}, "
                       f"add-jump split {m['add_jump_accuracy']:.3f}"),
)
