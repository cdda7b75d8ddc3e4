"""A generated bAbI-like question-answering toy (after Weston et al. 2015, arXiv:1502.05698, tasks 1
and 2), for End-To-End Memory Networks (Sukhbaatar et al. 2015, arXiv:1503.08895, section 4).

A story is a few sentences about people moving between places and picking up objects:

    mary went to the kitchen . john picked up the apple . john went to the garden . ...

and one question about its end state:

- one supporting fact (bAbI task 1): "where is mary" -> the place of mary's last move;
- two supporting facts (bAbI task 2): "where is the apple" -> who picked it up, then where that
  person went last. No sentence names the object and its place together, so the answer needs the two
  facts chained.

Every answer is computed by construction, by simulating the story's world as it is written (a person
is where they last went; an object is wherever the person who picked it up is). Objects are picked
up once and never dropped; only a person whose place is known picks one up, so every question asked
has an answer.

Words are integer ids into `VOCAB` (0 is the padding); a sentence is `SENTENCE_WORDS` ids, padded
with 0. Stories [N, S, J], questions [N, J], answers [N] (the id of a place), `facts` [N] (1 or 2)
and `support` [N, 2] (the indices of the supporting sentences, -1 where there is only one).
"""
import random
from dataclasses import dataclass

import torch

from course.checks import check_int, check_tensor

PEOPLE = ("mary", "john", "sandra", "daniel")
PLACES = ("kitchen", "garden", "office", "hallway")
OBJECTS = ("apple", "football", "milk")
WORDS = ("went", "to", "the", "picked", "up", "where", "is")
VOCAB = ("<pad>",) + PEOPLE + PLACES + OBJECTS + WORDS
INDEX = {word: i for i, word in enumerate(VOCAB)}
SENTENCE_WORDS = 5  # "john picked up the apple", "mary went to the kitchen"
PICK_UP = 0.3  # the chance that a sentence is a pick-up, when someone can pick something up


@dataclass
class BabiToy:
    """Stories [N, S, J], questions [N, J], answers [N], facts [N] (1 or 2), support [N, 2]."""

    stories: torch.Tensor
    questions: torch.Tensor
    answers: torch.Tensor
    facts: torch.Tensor
    support: torch.Tensor

    def __len__(self) -> int:
        return self.stories.shape[0]


def encode(words: list) -> list:
    """Word strings -> ids, padded with 0 to `SENTENCE_WORDS`."""
    return [INDEX[w] for w in words] + [0] * (SENTENCE_WORDS - len(words))


def decode(ids) -> str:
    """A sentence's ids [J] (or a list) -> its words, without the padding."""
    return " ".join(VOCAB[i] for i in (ids.tolist() if torch.is_tensor(ids) else ids) if i != 0)


def simulate_story(sentences: int, rng: random.Random):
    """One story of `sentences` actions: (word lists, place of each person, (holder, index) of each
    object picked up, index of each person's last move)."""
    place, holder, last_move, story = {}, {}, {}, []
    for t in range(sentences):
        placed = [p for p in PEOPLE if p in place]
        free = [o for o in OBJECTS if o not in holder]
        if placed and free and rng.random() < PICK_UP:
            person, thing = rng.choice(placed), rng.choice(free)
            holder[thing] = (person, t)
            story.append([person, "picked", "up", "the", thing])
        else:
            person = rng.choice(PEOPLE)
            place[person] = rng.choice([q for q in PLACES if q != place.get(person)])
            last_move[person] = t
            story.append([person, "went", "to", "the", place[person]])
    return story, place, holder, last_move


def questions_of(place: dict, holder: dict, last_move: dict, facts: int) -> list:
    """The answerable questions of a simulated story needing `facts` supporting facts:
    (question words, answer place, supporting sentence indices)."""
    if facts == 1:
        return [(["where", "is", p], place[p], (last_move[p], -1)) for p in PEOPLE if p in place]
    return [(["where", "is", "the", o], place[who], (t, last_move[who]))
            for o, (who, t) in holder.items()]


def generate(n: int, seed: int, sentences: int = 6) -> BabiToy:
    """`n` stories of `sentences` sentences, each with one question; even rows ask a one-fact question,
    odd rows a two-fact one (a story with no such question is drawn again)."""
    check_int("babi_toy.generate", "n", n, low=1)
    check_int("babi_toy.generate", "sentences", sentences, low=2)
    rng = random.Random(seed)
    stories, questions, answers, facts, support = [], [], [], [], []
    for i in range(n):
        need = 1 + i % 2
        while True:
            story, place, holder, last_move = simulate_story(sentences, rng)
            asked = questions_of(place, holder, last_move, need)
            if asked:
                break
        question, answer, used = rng.choice(asked)
        stories.append([encode(s) for s in story])
        questions.append(encode(question))
        answers.append(INDEX[answer])
        facts.append(need)
        support.append(used)
    return BabiToy(torch.tensor(stories), torch.tensor(questions), torch.tensor(answers),
                   torch.tensor(facts), torch.tensor(support))


def check_story_tensors(where: str, stories, questions):
    """Stories [B, S, J] and questions [B, J] of word ids in [0, len(VOCAB)), one batch size and J."""
    check_tensor(where, "stories", stories, ndim=3, kind="int")
    check_tensor(where, "questions", questions, ndim=2, kind="int")
    if questions.shape[0] != stories.shape[0] or questions.shape[1] != stories.shape[2]:
        raise ValueError(f"{where}: `questions` must be [B, J] = [{stories.shape[0]}, {stories.shape[2]}] "
                         f"to match `stories` [B, S, J]; got {tuple(questions.shape)}.")
    for name, t in (("stories", stories), ("questions", questions)):
        if t.numel() and (t.min() < 0 or t.max() >= len(VOCAB)):
            raise ValueError(f"{where}: `{name}` must hold word ids in [0, {len(VOCAB)}); got values "
                             f"from {t.min().item()} to {t.max().item()}.")
