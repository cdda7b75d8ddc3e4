"""Mixture-of-experts kernels: dispatch and combine as a parallel counting sort and row scatter/gather,
the experts as a grouped matrix product over blocks of rows."""
