"""The exercises of the associative-memory notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("hopfield.retrieve", "the modern Hopfield update: the logits beta xi . x_j of every stored "
             "pattern, a softmax over the patterns (not over the queries), the weighted sum of the patterns; "
             "`steps` times", "course.hopfield.modern:retrieve"),
    Exercise("hopfield.retrieve", "the streaming softmax: a running maximum m and sum l of exp(logit - m) "
             "over blocks of patterns, what was summed so far rescaled by exp(m_old - m_new) when a block "
             "raises the maximum", "course.hopfield.modern:retrieve_online"),
    Exercise("hopfield.sparse_retrieve", "sparsemax's threshold: sort the logits, find the support k (the "
             "largest k with 1 + k z_(k) > z_(1) + ... + z_(k)), tau = (z_(1) + ... + z_(k) - 1) / k",
             "course.hopfield.sparse:sparse_retrieve"),
)
