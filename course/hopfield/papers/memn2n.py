"""End-To-End Memory Networks (Sukhbaatar et al. 2015, arXiv:1503.08895): K hops of soft attention
over memory slots, one slot per sentence, trained end to end from question-answer pairs alone.

One hop (section 2.1): the story's sentences x_i are embedded twice, as input memories m_i = A x_i and
output memories c_i = C x_i; the question as u = B q. Then

    p_i = softmax(u^T m_i),    o = sum_i p_i c_i,    a = softmax(W (o + u)).

K hops (section 2.2) repeat the read with u^{k+1} = u^k + o^k, and answer a = softmax(W u^{K+1}).
Adjacent weight tying: A^{k+1} = C^k, B = A^1 and W^T = C^K, so K hops have K + 1 embedding
matrices E_0 .. E_K (A^k = E_{k-1}, C^k = E_k).
Sentence representation (section 4.1): position encoding m_i = sum_j l_j * A x_ij with
l_kj = (1 - j/J) - (k/d)(1 - 2j/J) (1-based j <= J words, k <= d features), or a bag of words; and
temporal encoding m_i = sum_j ... + T_A(i), c_i = ... + T_C(i), learned per slot (tied like A, C;
the toy's stories all have S sentences, so slot i is the i-th sentence, the paper's reverse order
relabelled).

The claim (Table 1, tasks 1 and 2; section 5's hop-attention figures): on the generated bAbI-like
toy of `babi_toy`, a 3-hop network answers the two-fact questions that a 1-hop network of the same
embedding size cannot, while both answer the one-fact ones.
"""
import functools

import torch
from torch import nn

from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.hopfield.papers import babi_toy
from course.metrics import accuracy, parameter_count
from course.train import DecayingAdam, fit, one_thread, seeded

DIM, SENTENCES, TRAIN, TEST, BATCH, STEPS, LR, INIT_STD = 20, 6, 2000, 1000, 64, 300, 0.02, 0.1


def position_encoding(lengths: torch.Tensor, words: int, dim: int) -> torch.Tensor:
    """Section 4.1's weights l_kj = (1 - j/J) - (k/d)(1 - 2j/J), J the sentence's own length;
    0 past it. lengths [*] (int) -> [*, words, dim]."""
    check_int("memn2n.position_encoding", "words", words, low=1)
    check_int("memn2n.position_encoding", "dim", dim, low=1)
    j = torch.arange(1, words + 1, dtype=torch.float32)[:, None]  # [J, 1]
    k = torch.arange(1, dim + 1, dtype=torch.float32)[None, :]  # [1, d]
    length = lengths.to(torch.float32)[..., None, None]  # [*, 1, 1]
    weights = (1 - j / length.clamp(min=1)) - (k / dim) * (1 - 2 * j / length.clamp(min=1))
    return weights * (j <= length)


class MemN2N(nn.Module):
    """A K-hop MemN2N with adjacent weight tying (section 2.2), for `slots` sentences of `words` words.

    forward(stories [B, S, J], questions [B, J]) -> (answer logits [B, V], attention [B, K, S]).
    """

    def __init__(self, vocab: int, dim: int, hops: int, slots: int, words: int,
                 position: bool = True, temporal: bool = True):
        super().__init__()
        for name, value, low in (("vocab", vocab, 2), ("dim", dim, 1), ("hops", hops, 1),
                                 ("slots", slots, 1), ("words", words, 1)):
            check_int("memn2n.MemN2N", name, value, low=low)
        self.hops, self.slots, self.words, self.position = hops, slots, words, position
        self.embeddings = nn.Parameter(torch.randn(hops + 1, vocab, dim) * INIT_STD)  # E_0 .. E_K
        self.temporal = nn.Parameter(torch.randn(hops + 1, slots, dim) * INIT_STD if temporal
                                     else torch.zeros(hops + 1, slots, dim), requires_grad=temporal)
        lengths = torch.arange(words + 1)  # a sentence's weights l_j by its length, 0 past it
        if position:
            weights = position_encoding(lengths, words, dim)
        else:  # a bag of words: 1 for every word of the sentence
            weights = (torch.arange(1, words + 1)[:, None] <= lengths[:, None, None]).float()
        self.register_buffer("word_weights", weights.expand(-1, -1, dim).contiguous())  # [J + 1, J, d]

    def embed(self, tokens: torch.Tensor, first: int, last: int) -> torch.Tensor:
        """Sentences [..., J] -> sum_j l_j * E_k x_j (or the bag of words) for k = first .. last,
        [last - first + 1, ..., d]; padding words count 0."""
        vectors = self.embeddings[first:last + 1, tokens]  # [k, ..., J, d]
        weights = self.word_weights[(tokens != 0).sum(-1)]  # [..., J, d]
        return (vectors * weights).sum(-2)

    def forward(self, stories: torch.Tensor, questions: torch.Tensor):
        babi_toy.check_story_tensors("memn2n.MemN2N", stories, questions)
        if stories.shape[1:] != (self.slots, self.words):
            raise ValueError(f"memn2n.MemN2N: `stories` must be [B, S, J] with S, J = {self.slots}, "
                             f"{self.words}; got {tuple(stories.shape)}.")
        u = self.embed(questions, 0, 0)[0]  # [B, d]
        memories = self.embed(stories, 0, self.hops) + self.temporal[:, None]  # [K + 1, B, S, d]
        attention = []
        for k in range(self.hops):
            p = torch.softmax(torch.einsum("bsd,bd->bs", memories[k], u), dim=-1)  # [B, S]
            u = u + torch.einsum("bs,bsd->bd", p, memories[k + 1])
            attention.append(p)
        return u @ self.embeddings[self.hops].T, torch.stack(attention, dim=1)


def model(hops: int, seed: int) -> MemN2N:
    """The claim's network: `hops` hops of width DIM over SENTENCES slots, initialised from `seed`."""
    with seeded(seed):
        return MemN2N(len(babi_toy.VOCAB), DIM, hops, SENTENCES, babi_toy.SENTENCE_WORDS)


def data(seed: int):
    """The seed's training and held-out stories (two generator seeds of their own)."""
    return (babi_toy.generate(TRAIN, 2 * seed, SENTENCES),
            babi_toy.generate(TEST, 2 * seed + 1, SENTENCES))


@functools.lru_cache(maxsize=6)
@one_thread()
def trained(hops: int, seed: int) -> MemN2N:
    """A `hops`-hop MemN2N trained (Adam, mini-batches of BATCH) on the seed's training stories; cached,
    so the notebook's attention figure and the claim share one run."""
    train, _ = data(seed)
    net = model(hops, seed)

    def loss():
        rows = torch.randint(len(train), (BATCH,))
        logits, _ = net(train.stories[rows], train.questions[rows])
        return nn.functional.cross_entropy(logits, train.answers[rows])

    fit(net.parameters() if net.temporal.requires_grad else [net.embeddings], loss, STEPS, LR,
        seed=seed, optimizer=DecayingAdam, total=STEPS)
    return net.eval()


def hop_attention(net: MemN2N, stories: torch.Tensor, questions: torch.Tensor) -> torch.Tensor:
    """The attention p^k over the memory slots at every hop, for one story [S, J] and its question
    [J] -> [K, S] (each row sums to 1)."""
    with torch.no_grad():
        _, attention = net(stories[None], questions[None])
    return attention[0]


@one_thread()
def memn2n_experiment(seed: int) -> dict:
    """Held-out accuracy of 1-hop and 3-hop networks on one- and two-fact questions."""
    _, test = data(seed)
    out = {}
    for name, hops in (("one_hop", 1), ("three_hop", 3)):
        net = trained(hops, seed)
        with torch.no_grad():
            logits, _ = net(test.stories, test.questions)
        for facts, label in ((1, "one_fact"), (2, "two_fact")):
            rows = test.facts == facts
            out[f"{name}_{label}"] = accuracy(logits[rows], test.answers[rows])
        out[f"{name}_parameters"] = float(parameter_count(net))
    out["two_fact_margin"] = out["three_hop_two_fact"] - out["one_hop_two_fact"]
    return out


CLAIM = Claim(
    paper="Sukhbaatar et al. 2015",
    citation="End-To-End Memory Networks (arXiv:1503.08895), sections 2.2 and 4.1, Table 1 (1 hop against "
             "3 hops on bAbI tasks 1 and 2)",
    statement="more memory hops answer questions that need chained supporting facts: 3 hops beat 1 hop "
              "on two-supporting-fact questions, while one hop suffices for single-fact questions",
    kind=REPRODUCTION,
    experiment=memn2n_experiment,
    thresholds=("two_fact_margin >= 0.2", "one_hop_one_fact >= 0.9", "three_hop_one_fact >= 0.9"),
    summary=lambda m: (
        f"held-out accuracy, one-fact questions: 1 hop {m['one_hop_one_fact']:.3f}, 3 hops "
        f"{m['three_hop_one_fact']:.3f}; two-fact questions: 1 hop {m['one_hop_two_fact']:.3f}, 3 hops "
        f"{m['three_hop_two_fact']:.3f} (margin {m['two_fact_margin']:+.3f})"),
    held_on=(0, 2),
    note="Embedding size 20, 6-sentence stories, 2000 training stories, 300 Adam steps on batches of 64, "
         "position and temporal encoding, no linear start and no restarts (the paper trains with linear "
         "start and keeps the best of 10 runs, section 4.2). Holds on seeds 0 and 2 (3 hops 0.85 and 0.76 "
         "against 0.49 and 0.51 on two-fact questions); on seed 1 the 3-hop network stays at the 1-hop "
         "level (0.48 held out, 0.57 on its own training stories): an optimisation failure, the local "
         "minimum that the paper's linear start and restarts are there to escape.",
)
