"""A generated Sort-of-CLEVR-like task, as object vectors: the toy of the Relation Network paper.

Santoro et al. 2017, "A simple neural network module for relational reasoning" (arXiv:1706.01427),
section 5.2 (Sort-of-CLEVR): scenes of objects, each of a different colour, with a shape and a
position; *non-relational* questions ask about one object, *relational* ones about its relation to
the others. The paper draws the scenes as images and reads objects out of a CNN's feature map; here a
scene is already its set of objects (as in its state-description experiments, section 5.1):

    object   [colour one-hot C | x, y in [-1, 1) | shape one-hot S]                D_o = C + 2 + S
    question [colour one-hot C (the subject) | question kind one-hot Q]           D_q = C + Q

Every scene holds one object of each colour (C = OBJECTS), in a random order, so a model must find
the subject by its colour. The four kinds of question (`KINDS`):

    shape        non-relational   the shape of the <colour> object
    left         non-relational   is the <colour> object on the left (x < 0)?
    closest      relational       the colour of the object closest to the <colour> one
    same_shape   relational       how many objects have the <colour> object's shape (itself included)

Answers are classes of one vocabulary (`ANSWERS`): the shapes, yes / no, the colours, the counts.
"""
from dataclasses import dataclass

import torch

from course.checks import check_int, check_tensor

COLOURS = ("red", "green", "blue", "orange")
SHAPES = ("square", "circle")
KINDS = ("shape", "left", "closest", "same_shape")
RELATIONAL = (False, False, True, True)
OBJECTS = len(COLOURS)
ANSWERS = SHAPES + ("yes", "no") + COLOURS + tuple(str(k) for k in range(1, OBJECTS + 1))
OBJECT_DIM = len(COLOURS) + 2 + len(SHAPES)
QUESTION_DIM = len(COLOURS) + len(KINDS)
YES, NO = len(SHAPES), len(SHAPES) + 1
FIRST_COLOUR = len(SHAPES) + 2
FIRST_COUNT = FIRST_COLOUR + len(COLOURS)


@dataclass(frozen=True)
class Questions:
    """objects [N, OBJECTS, OBJECT_DIM], questions [N, QUESTION_DIM], answers [N] (indices into
    ANSWERS), kinds [N] (indices into KINDS)."""

    objects: torch.Tensor
    questions: torch.Tensor
    answers: torch.Tensor
    kinds: torch.Tensor

    def __len__(self) -> int:
        return self.answers.shape[0]

    @property
    def relational(self) -> torch.Tensor:
        """[N] bool: the question is relational."""
        return torch.tensor(RELATIONAL)[self.kinds]

    def batch(self, rows) -> "Questions":
        return Questions(self.objects[rows], self.questions[rows], self.answers[rows], self.kinds[rows])


def scenes(n: int, generator: torch.Generator) -> torch.Tensor:
    """n scenes of one object per colour, shuffled: [n, OBJECTS, OBJECT_DIM] (colour, x, y, shape)."""
    check_int("sort_of_clevr.scenes", "n", n, low=0)
    colour = torch.rand(n, OBJECTS, generator=generator).argsort(dim=1)  # [n, K] a permutation
    position = 2 * torch.rand(n, OBJECTS, 2, generator=generator) - 1
    shape = torch.randint(len(SHAPES), (n, OBJECTS), generator=generator)
    return torch.cat([torch.nn.functional.one_hot(colour, len(COLOURS)).float(), position,
                      torch.nn.functional.one_hot(shape, len(SHAPES)).float()], dim=-1)


def parts(objects: torch.Tensor):
    """(colour [N, K] int, position [N, K, 2], shape [N, K] int) of objects [N, K, OBJECT_DIM]."""
    check_tensor("sort_of_clevr.parts", "objects", objects, ndim=3, kind="float")
    if objects.shape[-1] != OBJECT_DIM:
        raise ValueError(f"sort_of_clevr.parts: `objects` must be [N, K, OBJECT_DIM] with OBJECT_DIM = "
                         f"{OBJECT_DIM}; got shape {tuple(objects.shape)}.")
    C = len(COLOURS)
    return objects[..., :C].argmax(-1), objects[..., C:C + 2], objects[..., C + 2:].argmax(-1)


def answer(objects: torch.Tensor, colour: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """The answer (index into ANSWERS) to question `kind` [N] about the object of `colour` [N] in
    each scene objects [N, K, OBJECT_DIM] -> [N]."""
    colours, position, shape = parts(objects)
    subject = (colours == colour[:, None]).float().argmax(1)  # [N] the subject's slot
    rows = torch.arange(len(objects))
    own_shape, own_position = shape[rows, subject], position[rows, subject]  # [N], [N, 2]
    distance = (position - own_position[:, None]).norm(dim=-1)  # [N, K]
    distance[rows, subject] = float("inf")
    closest = colours[rows, distance.argmin(1)]
    count = (shape == own_shape[:, None]).sum(1)  # [N] in 1..K
    by_kind = torch.stack([own_shape, torch.where(own_position[:, 0] < 0, YES, NO),
                           FIRST_COLOUR + closest, FIRST_COUNT + count - 1])  # [4, N]
    return by_kind[kind, rows]


def encode_question(colour: torch.Tensor, kind: torch.Tensor) -> torch.Tensor:
    """The question vector [N, QUESTION_DIM]: colour one-hot, then kind one-hot."""
    return torch.cat([torch.nn.functional.one_hot(colour, len(COLOURS)),
                      torch.nn.functional.one_hot(kind, len(KINDS))], dim=-1).float()


def dataset(n: int, seed: int) -> Questions:
    """n scenes, one question each, of a uniformly drawn kind about a uniformly drawn colour."""
    check_int("sort_of_clevr.dataset", "n", n, low=1)
    g = torch.Generator().manual_seed(seed)
    objects = scenes(n, g)
    colour = torch.randint(len(COLOURS), (n,), generator=g)
    kind = torch.randint(len(KINDS), (n,), generator=g)
    return Questions(objects, encode_question(colour, kind), answer(objects, colour, kind), kind)
