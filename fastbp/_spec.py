"""Architecture -> small integer arrays for the kernels, and views into the flat vector."""
import numpy as np

from ._kernels.activations import (ELU, GELU, IDENTITY, LEAKY_RELU, LOGISTIC, RELU, SOFTPLUS,
                                  SWISH, TANH)
from ._kernels.losses import (OUT_IDENTITY, OUT_POISSON, OUT_SIGMOID, OUT_SOFTMAX,
                              SCRATCH_PER_SAMPLE)

#: Hidden activations by public name.
ACTIVATIONS = {
    "identity": IDENTITY,
    "logistic": LOGISTIC,
    "sigmoid": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "softplus": SOFTPLUS,
    "gelu": GELU,
    "swish": SWISH,
    "silu": SWISH,
}

#: Activations whose derivative needs their input: the forward pass keeps it.
KEEPS_PRE = (GELU, SWISH)

#: Output layers by public name; each implies its loss.
OUTPUTS = {
    "identity": OUT_IDENTITY,  # squared error
    "sigmoid": OUT_SIGMOID,  # binary / multilabel log loss
    "softmax": OUT_SOFTMAX,  # categorical log loss
    "poisson": OUT_POISSON,  # exp output, Poisson deviance (scikit-learn's loss='poisson')
}

#: Columns of the ``layers`` array handed to the kernels.
N_IN, N_OUT, CODE, W_OFF, B_OFF = range(5)


def layer_table(widths, activation_code, output_code):
    """The ``(L, 5)`` int64 table the kernels read, and the length of the flat vector.

    Each dense layer stores its weights ``(n_in, n_out)`` row-major, then its bias.
    """
    n_layers = len(widths) - 1
    table = np.empty((n_layers, 5), dtype=np.int64)
    off = 0
    for l in range(n_layers):
        n_in, n_out = widths[l], widths[l + 1]
        code = activation_code if l < n_layers - 1 else output_code
        table[l] = (n_in, n_out, code, off, off + n_in * n_out)
        off += n_in * n_out + n_out
    return table, off


def weight_views(params, table):
    """``(coefs, intercepts)``: lists of views of ``params``, shaped ``(n_in, n_out)`` and ``(n_out,)``."""
    coefs, intercepts = [], []
    for n_in, n_out, _, w_off, b_off in table:
        coefs.append(params[w_off:w_off + n_in * n_out].reshape(n_in, n_out))
        intercepts.append(params[b_off:b_off + n_out])
    return coefs, intercepts


def buffer_sizes(widths, batch, activation_code=IDENTITY):
    """Lengths of the activation buffer and the scratch buffer for batches of ``batch`` rows
    (the activation buffer also holds the hidden pre-activations for an activation that
    keeps them: gelu, swish)."""
    n_act = int(sum(widths))
    if activation_code in KEEPS_PRE:
        n_act += int(sum(widths[1:-1]))
    return n_act * batch, max(int(max(widths)), SCRATCH_PER_SAMPLE) * batch
