"""The exercises of the MoE notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("moe.dispatch", "dispatch as a loop: visit the assignments in GShard's priority order, "
             "drop those past the capacity", "course.moe.token_loop:dispatch_token_loop"),
    Exercise("moe.combine", "combine as a loop: each token's gate-weighted sum of its kept "
             "experts' outputs", "course.moe.token_loop:combine_token_loop"),
    Exercise("moe.expert_mlp", "the experts, one block of grouped rows at a time, with the right "
             "expert's weights for every block", "course.moe.experts:expert_mlp"),
)
