"""Architecture -> small integer arrays for the kernels, and views into the flat vector."""
import functools

import numpy as np

from ._config import TILE_READ_PAST
from ._kernels.activations import (ELU, GELU, IDENTITY, LEAKY_RELU, LOGISTIC, RELU, SOFTPLUS,
                                  SWISH, TANH)
from ._kernels.losses import (OUT_IDENTITY, OUT_POISSON, OUT_SIGMOID, OUT_SOFTMAX,
                              SCRATCH_PER_SAMPLE)
from ._validation import assign_array

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
N_IN, N_OUT, CODE, W_OFF, B_OFF, FLAGS, G_OFF, S_OFF = range(8)
#: Bits of the FLAGS column: the layer's output adds its input (an identity shortcut); the
#: layer's activations are dropped out in training; the layer is batch-normalized.
SHORTCUT = 1
DROPOUT = 2
BATCHNORM = 4


def _has_shortcut(widths, l, residual):
    """Whether dense layer ``l`` adds its input to its output: a hidden layer, with
    ``residual``, whose input and output widths match."""
    return bool(residual) and l < len(widths) - 2 and widths[l] == widths[l + 1]


def layer_table(widths, activation_code, output_code, residual=False, dropout=False,
                batch_norm=False):
    """The ``(L, 8)`` int64 table the kernels read, and the length of the flat vector.

    Each dense layer stores its weights ``(n_in, n_out)`` row-major, then its bias.
    With ``residual``, every hidden layer whose input and output widths match gets an
    identity shortcut (``SHORTCUT`` in its flags); with ``dropout`` every hidden layer is
    marked ``DROPOUT``.  With ``batch_norm`` every hidden layer is marked ``BATCHNORM``;
    its bias is then the shift applied after normalization, followed in the flat vector by
    the scales (``G_OFF``), and its running mean and variance sit at ``S_OFF`` and
    ``S_OFF + n_out`` of the running-statistics array (columns -1 for other layers).
    """
    n_layers = len(widths) - 1
    table = np.empty((n_layers, 8), dtype=np.int64)
    off = 0
    stats = 0
    for l in range(n_layers):
        n_in, n_out = widths[l], widths[l + 1]
        hidden = l < n_layers - 1
        code = activation_code if hidden else output_code
        flags = SHORTCUT if _has_shortcut(widths, l, residual) else 0
        if dropout and hidden:
            flags |= DROPOUT
        g_off = s_off = -1
        if batch_norm and hidden:
            flags |= BATCHNORM
            g_off, s_off = off + n_in * n_out + n_out, stats
            stats += 2 * n_out
        table[l] = (n_in, n_out, code, off, off + n_in * n_out, flags, g_off, s_off)
        off += n_in * n_out + n_out * (2 if g_off >= 0 else 1)
    return table, off


def n_running_stats(table):
    """Length of the running-statistics array (means and variances of batch-normalized layers)."""
    return int(2 * table[table[:, G_OFF] >= 0, N_OUT].sum())


class ParamViews(list):
    """A network's arrays of one kind (``coefs_``, ``intercepts_``, ...), each a view of its
    parameters: assigning an item writes into that view (checked by ``assign_array``), so
    that ``net.coefs_[1] = W`` changes the network as scikit-learn's attribute would; one
    array per layer, so the list's length is fixed.  Pickled or copied, a plain list."""

    def __init__(self, name, views):
        super().__init__(views)
        self.name = name

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            positions = range(len(self))[index]
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(f"{self.name}[{index.start}:{index.stop}] needs "
                                 f"{len(positions)} arrays, got {len(values)}")
            self._assign(positions, values)
        else:
            target = list.__getitem__(self, index)  # (IndexError, TypeError as a list's)
            assign_array(target, value, f"{self.name}[{index % len(self)}]")

    def assign(self, values):
        """Every array at once, from a sequence of as many (all checked before any is
        written)."""
        values = list(values)
        if len(values) != len(self):
            raise ValueError(f"{self.name} must hold {len(self)} arrays, got {len(values)}")
        self._assign(range(len(self)), values)

    def _assign(self, positions, values):
        backup = [list.__getitem__(self, i).copy() for i in positions]
        try:
            for i, v in zip(positions, values):
                assign_array(list.__getitem__(self, i), v, f"{self.name}[{i}]")
        except BaseException:
            for i, b in zip(positions, backup):
                list.__getitem__(self, i)[...] = b
            raise

    def _fixed(self, *args, **kwargs):
        raise TypeError(f"{self.name} holds one array per layer: assign arrays to its items "
                        "instead")

    append = extend = insert = pop = remove = clear = sort = reverse = _fixed
    __delitem__ = __iadd__ = __imul__ = _fixed

    def __reduce__(self):
        return list, (list(self),)


def weight_views(params, table):
    """``(coefs, intercepts)``: lists of views of ``params``, shaped ``(n_in, n_out)`` and ``(n_out,)``."""
    coefs, intercepts = [], []
    for n_in, n_out, _, w_off, b_off, *_ in table:
        coefs.append(params[w_off:w_off + n_in * n_out].reshape(n_in, n_out))
        intercepts.append(params[b_off:b_off + n_out])
    return coefs, intercepts


def scale_views(params, table):
    """Views of the batch-normalization scales of each batch-normalized layer, in order."""
    return [params[g:g + n] for n, g in zip(table[:, N_OUT], table[:, G_OFF]) if g >= 0]


def has_shortcuts(widths, residual):
    """Whether ``layer_table(widths, ..., residual)`` gives any layer a shortcut."""
    return any(_has_shortcut(widths, l, residual) for l in range(len(widths) - 1))


@functools.lru_cache(maxsize=256)  # called by every fit and predict with the same few sizes
def buffer_sizes(widths, batch, activation_code=IDENTITY, residual=False, dropout=False,
                 batch_norm=False):
    """Lengths of the activation buffer and the scratch buffer for batches of ``batch`` rows.

    The activation buffer also keeps, per hidden layer, what the activation's derivative
    needs when the layer's output is not it: the pre-activations of gelu and swish, or
    the activation before the shortcut is added or dropout applied.  With ``batch_norm``
    it then holds each hidden layer's normalized values and its inverse standard
    deviations ((batch + 1) values per unit).  With ``residual`` the scratch buffer
    doubles: its second half carries the shortcuts' gradients down.
    """
    hidden = int(sum(widths[1:-1]))
    n_act = int(sum(widths))
    if activation_code in KEEPS_PRE or residual or dropout:
        n_act += hidden
    if batch_norm:
        n_act += hidden
    scratch = max(int(max(widths)), SCRATCH_PER_SAMPLE) * batch
    # (and the values past the end a tile may read, _config.TILE_READ_PAST)
    return (n_act * batch + (hidden if batch_norm else 0) + TILE_READ_PAST,
            scratch * (2 if residual else 1) + TILE_READ_PAST)
