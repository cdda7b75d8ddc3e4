"""The exercises of the neuron-model notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("neurons.rational", "the safe rational activation: P(x) = a_0 + a_1 x + ... + a_m x^m over "
             "Q(x) = 1 + |b_1 x + ... + b_n x^n| (the denominator's sum starts at x^1: its constant is the 1)",
             "course.neurons.rational:rational"),
    Exercise("neurons.kan_linear", "the KAN layer: for each input a silu term weighted by `base` plus its "
             "G + 3 cubic B-spline values weighted by `coef`, summed over the inputs",
             "course.neurons.kan:kan_linear"),
    Exercise("neurons.phm_linear", "the PHM weight W = sum_i A_i (x) F_i: the small rule matrix A_i on the "
             "outside of the Kronecker product, the weight block F_i inside", "course.neurons.phm:phm_linear"),
)
