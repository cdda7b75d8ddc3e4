"""Neuron models, learnable activations and layer algebras (family `neuron-models`).

The library: `rational` (the safe rational activation P / (1 + |S|) by Horner's rule, and its fit to a
known activation), `kan` (B-spline bases and the Kolmogorov-Arnold layer), `phm` (the parameterized
hypercomplex layer, a sum of Kronecker products), `layers` (the modules over the ops); the registry's ops in
`ops`; one module per paper, with its toy and its claim, in `papers/`. The mixture-of-experts family's
KAN gate (KAMoE) imports this family's KAN layer.
"""
FAMILY = "neuron-models"
WIDGET = "course.widgets.response:gallery"

from course.neurons import kan, layers, phm, rational  # noqa: E402  (the modules, by name)
from course.neurons.kan import kan_linear  # noqa: E402
from course.neurons.layers import KANLayer, PHMLinear, QuadraticLinear, RationalActivation  # noqa: E402
from course.neurons.phm import phm_linear  # noqa: E402
from course.neurons.rational import rational as rational_activation  # noqa: E402

__all__ = ["KANLayer", "PHMLinear", "QuadraticLinear", "RationalActivation", "kan", "kan_linear", "layers", "phm",
           "phm_linear", "rational", "rational_activation"]
