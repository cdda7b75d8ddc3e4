"""The exercises of the sequence-model notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("ssm.scan", "the recurrence step by step: h_t = a_t h_{t-1} + x_t, the state carried over "
             "the sequence (an empty one too)", "course.ssm.scan:scan_step_loop"),
    Exercise("ssm.scan", "the parallel scan: log2(T) rounds of doubling with the associative operator "
             "(a1, x1) o (a2, x2) = (a2 a1, a2 x1 + x2), the gates composed as well as the values",
             "course.ssm.scan:scan"),
    Exercise("ssm.selective_scan", "Mamba's discretisation: exp(Delta A) for the state, Delta B u for the "
             "input (zero-order hold and Euler), then y = C . h + D u",
             "course.ssm.selective:selective_scan_step_loop"),
)
