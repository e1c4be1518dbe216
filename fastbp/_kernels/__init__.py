"""Numba kernels: every ``@njit`` function of fastbp, and nothing that is not one.

Kernels know arrays and integers only.  Activations are stored feature-major:
the activations of a layer of width ``w`` for a batch of ``nb`` samples are the
flat, contiguous block ``buf[off:off + w * nb]`` read as a ``(w, nb)`` matrix, so
every inner loop runs along the batch.
"""
