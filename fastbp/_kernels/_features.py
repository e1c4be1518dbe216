"""Which of the kernels' optional paths are compiled.

Each name is a global that guards a branch of the kernels (``if WITH_BN and ...``).
Numba resolves globals at compile time and removes a branch whose guard is False
before typing it, so nothing that branch calls is compiled.  In this package every
flag is True: its kernels take every path.  ``fastbp._variants`` writes copies of the
kernels that read this module with some flags False, one copy per set of features a
network uses, so that a first fit compiles only what it runs.
"""
#: Hidden activations, one flag each (``activations``; identity is always compiled).
WITH_LOGISTIC = True
WITH_TANH = True
WITH_RELU = True
WITH_LEAKY_RELU = True
WITH_ELU = True
WITH_SOFTPLUS = True
WITH_GELU = True
WITH_SWISH = True
#: Output layers (``losses``; identity is always compiled).
WITH_OUT_SIGMOID = True
WITH_OUT_SOFTMAX = True
WITH_OUT_POISSON = True
#: Batch normalization, dropout and shortcuts.
WITH_BN = True
WITH_DROPOUT = True
WITH_SHORTCUT = True
#: Some hidden layer's derivative reads a kept block (``epoch.keeps_separately``).
WITH_KEPT = True
#: Some layer is wide enough for BLAS, or small enough past the loops for the tiles, or
#: for their weight gradient (``dense.use_blas``, ``dense.use_tiles``,
#: ``dense.use_gradient_tiles``).
WITH_BLAS = True
WITH_TILES = True
#: The first layer may be split by its inputs across the parts of a sliced fit
#: (``epoch.run_epochs``, ``network._first_split``).
WITH_SPLIT_FIRST = True
