"""The SCAN-like grammar, its splits and the reader's shapes."""
import pytest
import torch

from course.ssm.papers import scan_compositional as sc


def test_the_grammar_interprets_as_in_the_paper():
    assert sc.interpret("jump".split()) == ("JUMP",)
    assert sc.interpret("walk left twice".split()) == ("LTURN", "WALK") * 2
    assert sc.interpret("run thrice after look right".split()) == ("RTURN", "LOOK", "RUN", "RUN", "RUN")
    assert sc.interpret("jump and walk".split()) == ("JUMP", "WALK")
    for bad in ("twice jump", "jump twice left", "", "jump and"):
        with pytest.raises(ValueError, match="not a command"):
            sc.interpret(bad.split())


def test_every_command_agrees_with_the_interpreter_and_fits_the_slots():
    every = sc.commands()
    assert len(every) == 36 + 2 * 36 ** 2 == len({w for w, _ in every})
    for words, actions in every:
        assert sc.interpret(words) == actions
        assert len(words) <= sc.IN_LEN and len(actions) <= sc.OUT_LEN
    x, y = sc.encode(every[:50])
    assert x.shape == (50, sc.IN_LEN) and y.shape == (50, sc.OUT_LEN)
    assert (x[:, -1] != 0).all()  # left-padded: the last position is always a word


def test_the_splits_partition_and_hold_jump_out():
    every = {w for w, _ in sc.commands()}
    train, test = sc.split("random", 0)
    seen, unseen = {w for w, _ in train}, {w for w, _ in test}
    assert seen | unseen == every and not seen & unseen
    train, test = sc.split("add_jump", 0)
    assert {w for w, _ in train if "jump" in w} == {("jump",)}
    assert all("jump" in w for w, _ in test) and len(test) == len(every) - len({w for w, _ in train})
    with pytest.raises(ValueError, match="`name`"):
        sc.split("length", 0)


def test_exact_match_needs_every_slot():
    y = torch.tensor([[1, 2, 0], [3, 0, 0]])
    logits = torch.nn.functional.one_hot(y, len(sc.ACTIONS)).float()
    assert sc.exact_match(logits, y) == 1.0
    logits[0, 2, 0], logits[0, 2, 4] = 0.0, 1.0
    assert sc.exact_match(logits, y) == 0.5
    assert sc.GRUReader()(sc.encode(sc.commands()[:3])[0]).shape == (3, sc.OUT_LEN, len(sc.ACTIONS))
