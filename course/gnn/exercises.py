"""The exercises of the message-passing notebook, each graded by `course.check` against an op's reference."""
from course.exercises import Exercise

EXERCISES = (
    Exercise("gnn.spmm", "aggregation as a loop over destination nodes: each node's weighted sum of its "
             "incoming neighbours' rows, for every graph (an empty one too)",
             "course.gnn.spmm:spmm_node_loop"),
    Exercise("gnn.spmm", "aggregation as a scatter: every edge adds its weighted source row into its "
             "destination's row with index_add", "course.gnn.spmm:spmm_index_add"),
    Exercise("gnn.gat_aggregate", "GAT's softmax over each node's incoming edges, stable for large "
             "scores: the kernel's online softmax", "course.gnn.attention:gat_aggregate_online"),
)
