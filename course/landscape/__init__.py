"""Loss-landscape geometry, mode connectivity and optimisation (family `loss-landscapes`).

The library: `models` (MLPs as one flat parameter vector, and their functional loss), `tasks` (the
offline tasks the experiments train on, and the training loop that records a trajectory),
`directions` (random, filter-normalised and PCA directions, and paths projected onto their plane),
`grid` (the loss on a whole grid of parameter points in one batched pass), `interpolation` (losses
along the line or a curve between two networks, and the barrier), `permutation` (Git Re-Basin's
weight and activation matching), `curvature` (Hessian-vector products, the top eigenvalue, the
sharpness along a path), `subspace` (dense and Fastfood random projections, the fast Walsh-Hadamard
transform), `schedules` (cyclical learning rates and the range test) and `views` (the widget's ready
data); the registry's ops in `ops`; the notebook's exercises in `exercises`; one module per paper,
with its toy and its claim, in `papers/`.
"""
FAMILY = "loss-landscapes"
WIDGET = "course.widgets.landscape:gallery"

from course.landscape import (curvature, directions, grid, interpolation, models, permutation,  # noqa: E402
                              schedules, subspace, tasks)  # the modules, by name
from course.landscape.curvature import hvp, lanczos, top_eigenvalue  # noqa: E402
from course.landscape.directions import filter_normalize, pca_directions, project  # noqa: E402
from course.landscape.grid import grid_loss, surface  # noqa: E402
from course.landscape.interpolation import barrier, line_losses  # noqa: E402
from course.landscape.models import flatten, mlp, mlp_loss  # noqa: E402
from course.landscape.permutation import activation_matching, permute, weight_matching  # noqa: E402

__all__ = ["activation_matching", "barrier", "curvature", "directions", "filter_normalize", "flatten",
           "grid", "grid_loss", "hvp", "interpolation", "lanczos", "line_losses", "mlp", "mlp_loss",
           "models", "pca_directions", "permutation", "permute", "project", "schedules", "subspace",
           "surface", "tasks", "top_eigenvalue", "weight_matching"]
