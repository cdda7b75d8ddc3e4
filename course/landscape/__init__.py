"""Loss-landscape geometry, mode connectivity and optimisation (family `loss-landscapes`).

The library: `models` (MLPs as one flat parameter vector, and their functional loss), `tasks` (the
offline classification tasks the experiments train on), `directions` (random, filter-normalised and
PCA directions, and trajectories projected onto a plane), `grid` (the loss on a whole grid of
parameter points in one batched pass), `interpolation` (losses along the line or a curve between two
networks, and the barrier), `permutation` (Git Re-Basin's weight and activation matching) and
`curvature` (Hessian-vector products and the top Hessian eigenvalue); the registry's ops in `ops`; the
notebook's exercises in `exercises`; one module per paper, with its toy and its claim, in `papers/`.
"""
FAMILY = "loss-landscapes"
WIDGET = "course.widgets.landscape:gallery"
