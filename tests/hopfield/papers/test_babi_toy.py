"""The bAbI-like toy: every answer checked against an independent reading of the story's words."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.hopfield.papers import babi_toy


def read_story(sentences: list) -> tuple:
    """Where each person is and who holds each object, from the story's words alone."""
    place, holder = {}, {}
    for words in sentences:
        if words[1] == "went":
            place[words[0]] = words[-1]
        elif words[1] == "picked":
            holder[words[-1]] = words[0]
    return place, holder


def answer_by_reading(story, question) -> str:
    place, holder = read_story([babi_toy.decode(s).split() for s in story])
    subject = babi_toy.decode(question).split()[-1]
    return place[holder[subject]] if subject in holder else place[subject]


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_every_answer_is_the_one_the_story_implies(seed, sentences):
    d = babi_toy.generate(40, seed, sentences)
    for story, question, answer in zip(d.stories, d.questions, d.answers):
        assert babi_toy.VOCAB[answer] == answer_by_reading(story, question)


def test_supporting_facts_are_the_sentences_the_answer_comes_from():
    d = babi_toy.generate(200, 3)
    assert d.stories.shape == (200, 6, babi_toy.SENTENCE_WORDS) and d.questions.shape == (200, 5)
    assert d.facts.tolist() == [1, 2] * 100
    for story, question, answer, facts, (first, second) in zip(d.stories, d.questions, d.answers,
                                                               d.facts, d.support):
        subject, place = babi_toy.decode(question).split()[-1], babi_toy.VOCAB[answer]
        words = [babi_toy.decode(s).split() for s in story]
        if facts == 1:
            assert second == -1 and words[first] == [subject, "went", "to", "the", place]
            assert all(w[:2] != [subject, "went"] for w in words[first + 1:])  # the last move
        else:
            holder = words[first][0]
            assert words[first][1:] == ["picked", "up", "the", subject]
            assert words[second] == [holder, "went", "to", "the", place]
            # no sentence names the object and its place together: the facts must be chained
            assert not any(subject in w and place in w for w in words)


def test_generation_is_deterministic_and_in_the_vocabulary():
    a, b = babi_toy.generate(30, 7), babi_toy.generate(30, 7)
    assert torch.equal(a.stories, b.stories) and torch.equal(a.answers, b.answers)
    assert a.stories.min() >= 0 and a.stories.max() < len(babi_toy.VOCAB)
    assert not torch.equal(a.stories, babi_toy.generate(30, 8).stories)
    assert babi_toy.decode(babi_toy.encode(["mary", "went", "to", "the", "kitchen"])) == \
        "mary went to the kitchen"


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`n`"):
        babi_toy.generate(0, 0)
    with pytest.raises(ValueError, match="`sentences`"):
        babi_toy.generate(3, 0, sentences=1)
    d = babi_toy.generate(4, 0)
    with pytest.raises(ValueError, match="`questions`"):
        babi_toy.check_story_tensors("t", d.stories, d.questions[:3])
    with pytest.raises(TypeError, match="`stories`"):
        babi_toy.check_story_tensors("t", d.stories.float(), d.questions)
    with pytest.raises(ValueError, match="`stories`"):
        babi_toy.check_story_tensors("t", d.stories + 100, d.questions)
