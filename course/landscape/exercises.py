"""The exercises of the loss-landscape notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("landscape.grid_loss", "a loss surface the way a plot script computes it: one grid point at "
             "a time, theta + alpha d1 + beta d2 written into the model", "course.landscape.grid:"
             "grid_loss_point_loop"),
    Exercise("landscape.grid_loss", "the whole grid in one batched pass: vmap of the functional loss over "
             "the G parameter points", "course.landscape.grid:grid_loss"),
    Exercise("landscape.hvp", "an exact Hessian-vector product: the gradient of g(theta) . v, a second "
             "backward pass through the first (finite differences are not exact)",
             "course.landscape.curvature:hvp"),
)
