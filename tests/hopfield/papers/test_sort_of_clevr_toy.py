"""The Sort-of-CLEVR-like toy: scenes are well formed, and every answer agrees with a plain-Python
reading of the scene."""
import math

import pytest
import torch

from course.hopfield.papers import sort_of_clevr_toy as toy


def answer_by_hand(objects, colour, kind):
    """The answer to one question, read from the object vectors with plain Python."""
    C = len(toy.COLOURS)
    scene = [(o[:C].index(1.0), o[C], o[C + 1], o[C + 2:].index(1.0)) for o in objects]
    subject = next(o for o in scene if o[0] == colour)
    if kind == "shape":
        return toy.ANSWERS.index(toy.SHAPES[subject[3]])
    if kind == "left":
        return toy.ANSWERS.index("yes" if subject[1] < 0 else "no")
    if kind == "closest":
        others = [o for o in scene if o is not subject]
        nearest = min(others, key=lambda o: math.hypot(o[1] - subject[1], o[2] - subject[2]))
        return toy.ANSWERS.index(toy.COLOURS[nearest[0]])
    return toy.ANSWERS.index(str(sum(o[3] == subject[3] for o in scene)))


def test_every_answer_agrees_with_a_reading_by_hand():
    data = toy.dataset(400, 3)
    C = len(toy.COLOURS)
    for objects, question, ans in zip(data.objects.tolist(), data.questions.tolist(), data.answers.tolist()):
        colour, kind = question[:C].index(1.0), toy.KINDS[question[C:].index(1.0)]
        assert ans == answer_by_hand(objects, colour, kind)


def test_scenes_hold_one_object_of_each_colour_and_every_kind_is_asked():
    data = toy.dataset(300, 0)
    colour, position, shape = toy.parts(data.objects)
    assert (colour.sort(1).values == torch.arange(toy.OBJECTS)).all()
    assert (position.abs() <= 1).all() and set(shape.unique().tolist()) == {0, 1}
    assert set(data.kinds.tolist()) == set(range(len(toy.KINDS)))
    assert data.relational.tolist() == [toy.RELATIONAL[k] for k in data.kinds.tolist()]
    assert data.questions.shape == (300, toy.QUESTION_DIM)


def test_same_seed_same_draw():
    a, b = toy.dataset(20, 5), toy.dataset(20, 5)
    assert torch.equal(a.objects, b.objects) and torch.equal(a.answers, b.answers)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="`n`"):
        toy.dataset(0, 0)
    with pytest.raises(ValueError, match="`objects`"):
        toy.parts(torch.zeros(2, 3, toy.OBJECT_DIM + 1))
    with pytest.raises(TypeError, match="`objects`"):
        toy.parts(torch.zeros(2, 3, toy.OBJECT_DIM, dtype=torch.long))
