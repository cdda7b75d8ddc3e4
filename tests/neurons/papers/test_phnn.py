"""PHNN's toy: the PHM classifiers have the parameter counts of the algebra (n^3 + I O / n per layer),
the data are the course's glyphs, and bad input is named."""
import pytest
import torch

from course.metrics import parameter_count
from course.neurons import phm
from course.neurons.papers import phnn


@pytest.mark.parametrize("n", [1, 2, 4])
def test_the_parameter_counts_follow_the_algebra(n):
    model = phnn.classifier(n)
    weights = sum(phm.parameter_counts(i, o, n)[0] for i, o in ((64, phnn.HIDDEN), (phnn.HIDDEN, 16)))
    assert parameter_count(model) == weights + phnn.HIDDEN + 16  # plus the biases
    real = parameter_count(phnn.classifier(None))
    assert real == 64 * phnn.HIDDEN + phnn.HIDDEN + phnn.HIDDEN * 16 + 16
    assert model(torch.randn(3, 64)).shape == (3, 16)
    if n > 1:
        assert real / parameter_count(model) > 0.8 * n


def test_the_task_labels_glyph_and_place():
    x, label = phnn.glyph_task(50, 0)
    assert x.shape == (50, 64) and label.min() >= 0 and label.max() < 16


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="`hidden`"):
        phnn.classifier(2, hidden=0)
    with pytest.raises(ValueError, match="n must divide"):
        phnn.classifier(3)
