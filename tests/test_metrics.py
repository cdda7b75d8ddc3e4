"""The experiments' shared measures against their definitions."""
import pytest
import torch

from course import metrics


def test_relative_mse_is_zero_when_perfect_and_one_when_predicting_the_mean():
    y = torch.randn(50, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 5.0, 0.2])
    assert metrics.relative_mse(y, y) == 0.0
    assert metrics.relative_mse(y.mean(0).expand_as(y), y) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="one shape"):
        metrics.relative_mse(y[:, 0], y)


def test_accuracy_and_linear_fit():
    assert metrics.accuracy(torch.tensor([[0.1, 0.9], [2.0, 1.0]]), torch.tensor([1, 1])) == 0.5
    x = torch.arange(10.0)
    slope, r2 = metrics.linear_fit(x, 3 * x + 1)
    assert slope == pytest.approx(3.0) and r2 == pytest.approx(1.0)
