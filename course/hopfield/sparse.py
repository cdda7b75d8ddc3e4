"""Sparse modern Hopfield retrieval: sparsemax in place of softmax (Hu et al. 2023, "On Sparse Modern
Hopfield Model"; STanHop, Wu et al. 2023, arXiv:2312.17346, section 3, whose layers use it).

    update    xi_new = X^T sparsemax(beta X xi)
    energy    H(xi) = -Psi*(beta X xi) / beta + 1/2 xi . xi
with Psi the negative Gini entropy, Psi(p) = 1/2 |p|^2 - 1/2 on the simplex, and its convex conjugate
Psi*(z) = <p*, z> - Psi(p*), p* = sparsemax(z) (Hu et al., eq. 2.3 and Lemma 2.1). The update is again
the concave-convex procedure, so H never increases. Sparsemax (Martins & Astudillo 2016) puts exactly
zero weight on patterns far from the query: retrieval among few close patterns is exact, with no
exponentially small leak from the rest, and the weights are a point of the simplex with a support.

`sparse_retrieve` is the op `hopfield.sparse_retrieve`'s reference; `sparse_retrieve_online` the
streaming form whose threshold comes from one sorted row (`course.streaming`), as in the kernels;
`sparse_retrieve_entmax` uses the `entmax` package's sparsemax, the peer.
"""

from course.hopfield.modern import check_beta, check_retrieve_args, temperatures
from course.streaming import SPARSEMAX, accumulator, sparsemax, streaming_retrieval


def sparse_retrieve(queries, patterns, beta, steps: int = 1):
    """`steps` updates xi <- sparsemax(beta xi X^T) X of every query. queries [N, D], patterns [M, D],
    beta > 0 -> [N, D]"""
    beta = check_retrieve_args("hopfield.sparse_retrieve", queries, patterns, beta, steps)
    acc = accumulator(queries.dtype)
    X, xi = patterns.to(acc), queries
    for _ in range(steps):
        xi = (sparsemax(beta * (xi.to(acc) @ X.T), dim=1) @ X).to(queries.dtype)
    return xi


def sparse_retrieve_online(queries, patterns, beta, steps: int = 1):
    """The same by the streaming loops: the threshold from one sorted row, then the weighted sum block by
    block, and sparsemax's backward from the support. -> [N, D]"""
    beta = check_retrieve_args("hopfield.sparse_retrieve_online", queries, patterns, beta, steps)
    xi = queries
    for _ in range(steps):
        xi = streaming_retrieval(xi, patterns, temperatures(xi, beta), 0.0, SPARSEMAX)
    return xi


def sparse_retrieve_entmax(queries, patterns, beta, steps: int = 1):
    """The same with the `entmax` package's sparsemax (the peer). -> [N, D]"""
    beta = check_retrieve_args("hopfield.sparse_retrieve_entmax", queries, patterns, beta, steps)
    from entmax import sparsemax as entmax_sparsemax

    acc = accumulator(queries.dtype)
    X, xi = patterns.to(acc), queries
    for _ in range(steps):
        xi = (entmax_sparsemax(beta * (xi.to(acc) @ X.T), dim=1) @ X).to(queries.dtype)
    return xi


def gini_conjugate(z):
    """Psi*(z) = <p*, z> - 1/2 |p*|^2 + 1/2 with p* = sparsemax(z), over the last dim. [..., M] -> [...]"""
    p = sparsemax(z, dim=-1)
    return (p * z).sum(-1) - 0.5 * (p * p).sum(-1) + 0.5


def sparse_energy(states, patterns, beta):
    """H(xi) = -Psi*(beta X xi) / beta + xi . xi / 2 for states [N, D] (or [D]). -> [N] (or a scalar)"""
    beta = check_beta("hopfield.sparse_energy", beta)
    return -gini_conjugate(beta * (states @ patterns.T)) / beta + 0.5 * (states * states).sum(-1)


def support_size(queries, patterns, beta):
    """How many patterns get a nonzero weight in each query's first update. -> [N]"""
    beta = check_beta("hopfield.support_size", beta)
    return (sparsemax(beta * (queries @ patterns.T), dim=1) > 0).sum(1)
