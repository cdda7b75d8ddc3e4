"""Griffin's toy: the three stacks at matched size, the mixed task half recall, half long-range."""
import torch

from course.ssm.papers import griffin


def test_the_three_stacks_are_matched_in_size_and_differ_in_their_blocks():
    models = {name: griffin.model(pattern, 0) for name, pattern in griffin.PATTERNS.items()}
    sizes = [sum(p.numel() for p in m.parameters()) for m in models.values()]
    assert max(sizes) / min(sizes) - 1 < 0.05
    assert [b.kind for b in models["griffin"].blocks] == ["R", "A"]
    assert {b.kind for b in models["hawk"].blocks} == {"R"}
    assert {b.kind for b in models["local_attention"].blocks} == {"A"}


def test_the_mixed_task_holds_both_tasks_with_their_answers_at_the_end():
    d = griffin.recall_and_long_range(40, 0)
    assert d.inputs.shape == (40, griffin.T) and d.mask[:, -1].all() and d.mask.sum() == 40
    assert d.inputs.max() < d.vocab == griffin.VOCAB
    recall = d.inputs[:, 0] == d.vocab - 1  # left-padded rows are the recall ones
    assert recall.sum() == 20 and (d.targets[recall, -1] < 9).all() and (d.targets[~recall, -1] >= 9).all()
    assert torch.equal(d.inputs, griffin.recall_and_long_range(40, 0).inputs)
