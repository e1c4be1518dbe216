"""Network: a dense feed-forward network trained by backpropagation with fused Numba kernels.

The Python side owns what happens once per epoch (learning-rate schedule, shuffling,
validation, early stopping, callbacks, progress, Ctrl-C); everything inside an
epoch is one kernel call (``_kernels.epoch.run_epochs``), and when nothing happens
between epochs but the training loss's stopping rule, so is a whole batch of them.
With two or more threads, small and medium networks run each minibatch as one slice per
thread (``_split_parts``, ``_run_parts``: one call of the kernel in each thread, meeting at a
barrier), BLAS single-threaded meanwhile.
"""
import contextlib
import ctypes
import os
import queue
import signal
import threading
import time
import warnings

import numba
import numpy as np
from numba.np.ufunc import parallel as _numba_parallel

from . import _config
from ._kernels import blas
from ._kernels.finite import all_finite
from ._kernels.optimizers import H_ALPHA, H_CLIP_NORM, H_CLIP_VALUE, H_LR, SGD as SGD_KIND
from ._kernels.shuffle import epoch_orders
from ._kernels.sync import ABORT, SYNC_SIZE
from ._variants import kernels, splittable_first
from ._spec import (ACTIVATIONS, G_OFF, N_OUT, OUTPUTS, S_OFF, ParamViews, buffer_sizes,
                    has_shortcuts, layer_table, n_running_stats, scale_views, weight_views)
from ._validation import (check_X, check_bool, check_choice, check_float_dtype, check_int,
                          check_layers, check_nonnegative_float, check_optional_positive_float,
                          check_positive_float, check_random_state, check_sample_weight,
                          check_targets)
from .optim import LBFGS, Adaptive, Constant, get_optimizer, get_schedule

INITS = ("glorot", "he", "normal")


class DivergenceError(ValueError):
    """Training produced a non-finite loss or non-finite weights."""


class Network:
    """A dense network ``[n_in, h1, ..., n_out]`` trained by minibatch backpropagation.

    Parameters
    ----------
    layers : sequence of int
        Widths of every layer, input first, output last.
    activation : str, default='relu'
        Activation of every hidden layer: 'identity', 'logistic' (alias 'sigmoid'), 'tanh',
        'relu', 'leaky_relu' (slope 0.01), 'elu' (alpha 1), 'softplus', 'gelu' (the tanh
        approximation) or 'swish' (alias 'silu').
    output : {'identity', 'sigmoid', 'softmax', 'poisson'}, default='identity'
        Output layer, which fixes the loss: squared error, binary (or multilabel)
        log loss, categorical log loss, or (exp output) Poisson deviance.
        Conventions are scikit-learn's.
    dtype : float32 or float64, default=np.float32
        Dtype of the parameters and of the training arithmetic.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the shuffling of every epoch.
    init : {'glorot', 'he', 'normal'}, default='glorot'
        ``glorot``: scikit-learn's scheme, weights and biases uniform in
        ``+-sqrt(f / (fan_in + fan_out))`` with ``f = 2`` for logistic hidden units, else 6.
        ``he``: weights normal with standard deviation ``sqrt(2 / fan_in)``, zero biases.
        ``normal``: weights normal with standard deviation ``init_scale``, zero biases.
    init_scale : float, default=0.01
        Standard deviation of the ``normal`` initialisation (the seed article's 0.01).
    dropout : float in [0, 1), default=0.0
        Inverted dropout on every hidden layer's output during training with the
        stochastic optimizers: each unit is zeroed with probability ``dropout`` and the
        rest scaled by ``1 / (1 - dropout)``; ``predict``, ``forward``, ``score`` and
        ``loss_and_gradients`` use the whole network.  The masks come from
        ``random_state``, so runs are reproducible.
    residual : bool, default=False
        Identity shortcuts: every hidden layer whose input and output widths match
        outputs ``act(W x + b) + x``, so gradients reach early layers through the sum
        (a remedy for vanishing gradients in deep networks).
    batch_norm : bool, default=False
        Batch normalization of every hidden layer between its affine transform and its
        activation: each unit is normalized by the batch's mean and variance in training
        (by running estimates in ``predict``, ``forward`` and ``score``), then scaled by a
        learned ``scales_`` and shifted by the layer's intercept, which then plays the
        part of the shift (the affine transform itself has no bias).  Running statistics
        follow PyTorch's ``BatchNorm1d``: momentum 0.1, eps 1e-5, unbiased running
        variance.  The statistics are unweighted: sample weights weight the loss only.
        Minibatches need 2 samples or more (``batch_size`` of 1 raises); a last minibatch
        of one sample, when the rows leave one over, trains as Keras's does, not raising
        as PyTorch's does: every unit normalizes to 0, so that step moves only the
        shifts and the layers above, and the running variance is left as it is.
        ``loss_and_gradients`` normalizes by the statistics of the whole data it is
        given.  Not with L-BFGS.

    Attributes
    ----------
    coefs_ : list of ndarray of shape (n_in, n_out)
        Weight matrices, views into one flat parameter vector.
    intercepts_ : list of ndarray of shape (n_out,)
        Bias vectors, views into the same vector (the shifts, for batch-normalized layers).
    scales_ : list of ndarray of shape (n_out,)
        With ``batch_norm``: each hidden layer's learned scales, views into the same vector.
    running_means_, running_vars_ : list of ndarray of shape (n_out,)
        With ``batch_norm``: each hidden layer's running mean and variance (not trained
        by the optimizer; saved with the network).
    loss_curve_ : list of float
        Mean training loss (with the L2 term) of each epoch.
    validation_scores_ : list of float
        Score on the validation data after each epoch, when there are validation data.
    best_loss_, best_validation_score_ : float or None
    n_iter_ : int
        Epochs trained (across ``warm_start`` fits).
    t_ : int
        Training samples seen (across ``warm_start`` fits).
    """

    def __init__(self, layers, activation="relu", output="identity", dtype=np.float32,
                 random_state=None, init="glorot", init_scale=0.01, residual=False, dropout=0.0,
                 batch_norm=False):
        self.layers = check_layers(layers)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.output = check_choice("output", output, OUTPUTS)
        if output == "softmax" and self.layers[-1] < 2:
            raise ValueError(f"output='softmax' needs at least 2 output units, got layers={list(layers)}")
        self.dtype = check_float_dtype(dtype)
        self.init = check_choice("init", init, INITS)
        self.init_scale = check_positive_float("init_scale", init_scale)
        self.residual = check_bool("residual", residual)
        self.batch_norm = check_bool("batch_norm", batch_norm)
        self.dropout = check_nonnegative_float("dropout", dropout)
        if not self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self._table, n_params = layer_table(self.layers, ACTIVATIONS[self.activation],
                                            OUTPUTS[self.output], self.residual,
                                            self.dropout > 0, self.batch_norm)
        self._params = np.empty(n_params, dtype=self.dtype)
        self._stats = np.empty(n_running_stats(self._table), dtype=self.dtype)
        self._set_views()
        self._initialise()
        # Dropout masks: epoch e of the network's life is seeded by _dropout_seed + e.
        self._dropout_seed = int(self._rng.randint(2 ** 62)) if self.dropout > 0 else 0
        self._dropout_epochs = 0
        self._reset_training()

    # -- parameters -----------------------------------------------------------------------------

    def _set_views(self):
        coefs, intercepts = weight_views(self._params, self._table)
        normalized = self._table[self._table[:, G_OFF] >= 0]
        views = {"coefs_": coefs, "intercepts_": intercepts,
                 "scales_": scale_views(self._params, self._table),
                 "running_means_": [self._stats[s:s + n] for n, s in
                                    zip(normalized[:, N_OUT], normalized[:, S_OFF])],
                 "running_vars_": [self._stats[s + n:s + 2 * n] for n, s in
                                   zip(normalized[:, N_OUT], normalized[:, S_OFF])]}
        self._views = {name: ParamViews(name, v) for name, v in views.items()}

    def _views_property(name):
        """The network's ``name`` arrays (``ParamViews``); assigning a list writes them all."""
        def get(self):
            return self._views[name]

        def put(self, values):
            self._views[name].assign(values)

        return property(get, put)

    coefs_ = _views_property("coefs_")
    intercepts_ = _views_property("intercepts_")
    scales_ = _views_property("scales_")
    running_means_ = _views_property("running_means_")
    running_vars_ = _views_property("running_vars_")
    del _views_property

    def _initialise(self):
        rng = self._rng
        # glorot: scikit-learn's scheme and draw order (per layer, coefs then intercepts).
        factor = 2.0 if self.activation in ("logistic", "sigmoid") else 6.0
        for W, b in zip(self.coefs_, self.intercepts_):
            fan_in, fan_out = W.shape
            if self.init == "glorot":
                bound = np.sqrt(factor / (fan_in + fan_out))
                W[...] = rng.uniform(-bound, bound, W.shape)
                b[...] = rng.uniform(-bound, bound, b.shape)
            else:
                std = np.sqrt(2.0 / fan_in) if self.init == "he" else self.init_scale
                W[...] = rng.normal(0.0, std, W.shape)
                b[...] = 0.0
        # Batch normalization starts as the identity (PyTorch's init): scale 1, shift 0
        # (the shift's draw above is kept, so the weights match a plain network's).
        for l, g in zip(np.flatnonzero(self._table[:, G_OFF] >= 0), self.scales_):
            g[...] = 1.0
            self.intercepts_[l][...] = 0.0
        self._reset_running_stats()

    def _reset_running_stats(self):
        """Running means 0 and variances 1, as before any training."""
        for m, v in zip(self.running_means_, self.running_vars_):
            m[...] = 0.0
            v[...] = 1.0

    def _reset_training(self):
        """Forget the optimizer state and the history (a fit without ``warm_start``)."""
        self._optimizer = None
        self._opt_state = None
        self._hyper = None
        self._epoch = 0          # epochs under the current schedule
        self._lr = None          # current rate of an adaptive schedule
        self._no_improvement = 0
        self._perm = None        # visiting order of the training rows, by position
        self.loss_curve_ = []
        self._gradient_norms = []  # (a block of rows per kernel call; see gradient_norms_)
        self.validation_scores_ = []
        self.best_loss_ = None
        self.best_validation_score_ = None
        self.n_iter_ = 0
        self.t_ = 0

    @property
    def n_features_in_(self):
        return self.layers[0]

    @property
    def n_outputs_(self):
        return self.layers[-1]

    def get_params_vector(self):
        """A copy of the flat parameter vector (all weights and biases, layer by layer)."""
        return self._params.copy()

    def set_params_vector(self, vector):
        """Overwrite every weight and bias from a flat vector of the right length."""
        v = np.asarray(vector)
        if v.shape != self._params.shape:
            raise ValueError(f"vector must have shape {self._params.shape}, got {v.shape}")
        v = check_X(v.reshape(1, -1), self.dtype, name="vector").ravel()
        self._params[:] = v

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_views"]  # (views of _params and _stats, made again by __setstate__)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # joblib.load(..., mmap_mode='r') hands arrays back as read-only maps: the kernels
        # write the parameters (fit) and the running statistics, so take writable copies
        # (and of the layer table too: a read-only one is another type, whose kernels Numba
        # would compile again).
        for name in ("_table", "_params", "_stats", "_opt_state", "_hyper", "_perm"):
            a = self.__dict__.get(name)
            if isinstance(a, np.ndarray) and not a.flags.writeable:
                self.__dict__[name] = np.array(a)
        self._set_views()

    def __repr__(self):
        extra = (", residual=True" if self.residual else "") + \
            (f", dropout={self.dropout:g}" if self.dropout else "") + \
            (", batch_norm=True" if self.batch_norm else "")
        return (f"Network(layers={list(self.layers)}, activation={self.activation!r}, "
                f"output={self.output!r}, dtype={self.dtype.name}{extra})")

    def _buffer_sizes(self, batch):
        """Lengths of the kernels' activation and scratch buffers for ``batch`` rows."""
        return buffer_sizes(self.layers, batch, ACTIVATIONS[self.activation],
                            has_shortcuts(self.layers, self.residual), self.dropout > 0,
                            self.batch_norm)

    def save(self, path):
        """Write the network (architecture, weights, optimizer state, history) to an ``.npz`` file.

        The file is written next to ``path`` and renamed into place, so a failed save
        leaves any existing file intact.  Read it back with ``fastbp.load``.
        """
        from .io import save

        save(self, path)

    # -- training -------------------------------------------------------------------------------

    def _check_data(self, X, y, sample_weight=None):
        """X, the targets as a 2-D array, and the sample weights (ones when None)."""
        X = check_X(X, self.dtype, self.n_features_in_)
        Y = check_targets(y, X.shape[0], self.n_outputs_, self.output, self.dtype)
        return X, Y, check_sample_weight(sample_weight, X.shape[0], self.dtype)

    def fit(self, X, y, *, epochs=200, batch_size=32, learning_rate=None, optimizer=None,
            schedule=None, alpha=0.0, clip_norm=None, clip_value=None, shuffle=True,
            early_stopping=False, validation_fraction=0.1, validation_data=None,
            n_iter_no_change=10, tol=None, callbacks=None, verbose=False, warm_start=False,
            n_threads=None, sample_weight=None):
        """Train from the current weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; for a softmax output, integer class indices are accepted.
        epochs : int, default=200
            Epochs to run (fewer if training stops early).
        batch_size : int, default=32
            Capped at the number of training samples (full-batch training).
        learning_rate : float, default=None
            Initial learning rate; the schedule sets the rate of each epoch.  None: 0.01, or
            with ``warm_start`` (and ``partial_fit``) the previous fit's.
        optimizer : str or fastbp.optim.Optimizer, default=None
            'sgd', 'momentum', 'nesterov' (momentum 0.9), 'adam', 'adamw' or 'lbfgs'
            (full batch through scipy; one epoch is one iteration).  None: 'sgd', or with
            ``warm_start`` (and ``partial_fit``) the previous fit's, whose state goes on.
        schedule : str or fastbp.optim.Schedule, default=None
            'constant', 'invscaling', 'adaptive', 'cosine' or 'step'.  None: 'constant', or
            with ``warm_start`` (and ``partial_fit``) the previous fit's.
        alpha : float, default=0.0
            L2 penalty, scikit-learn's convention: ``0.5 * alpha * sum(W**2) / batch``.
        clip_norm, clip_value : float or None, default=None
            Clip each gradient to this global norm, or each of its elements to +-value.
        shuffle : bool, default=True
            Visit the samples in a new random order every epoch.  Ignored when one batch
            holds every training sample: the order would only reorder its sums, so no
            permutation is drawn (the random state is left as it is) and the batch is
            gathered once for all the epochs of a kernel call.
        early_stopping : bool, default=False
            Hold out ``validation_fraction`` of the data (or use ``validation_data``), stop
            when its score has not improved by ``tol`` for ``n_iter_no_change`` epochs,
            and restore the weights of the best epoch.
        validation_fraction : float, default=0.1
        validation_data : tuple (X_val, y_val), optional
            Scored after every epoch (accuracy for sigmoid and softmax outputs, R^2 for
            identity), into ``validation_scores_``.
        n_iter_no_change : int, default=10
        tol : float or None, default=None
            Without early stopping, a non-None ``tol`` stops training when the training
            loss has not improved by ``tol`` for ``n_iter_no_change`` epochs (scikit-learn's
            rule); None trains every epoch.  With early stopping, None means 0.
        callbacks : list of callables, optional
            Each is called as ``callback(epoch, metrics)`` after every epoch, with the
            1-based epoch number and a dict (``loss``, ``learning_rate``, and
            ``validation_score`` when scored); returning True stops training.
        verbose : bool, default=False
            Show a progress bar (tqdm) with the loss and validation score.
        warm_start : bool, default=False
            Continue the previous fit: its history (losses, epochs and samples counted, the
            schedule's position) and, with the same optimizer, its optimizer state (another
            optimizer starts afresh).  Without it, the optimizer and history start afresh
            (the weights are kept).
        n_threads : int or None, default=None
            Threads for fastbp's kernels and for BLAS during this fit, restored afterwards,
            at most ``NUMBA_NUM_THREADS`` (the machine's cores unless set; None: that many,
            and BLAS as it is).  With two or more threads, each minibatch of a small or medium network is
            cut into one slice per thread, BLAS single-threaded meanwhile (not with batch
            normalization or dropout).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights: each batch's loss is the weighted mean of its samples'
            losses (scikit-learn's convention).

        Returns
        -------
        self
        """
        epochs = check_int("epochs", epochs)
        batch_size = check_int("batch_size", batch_size)
        warm_start = check_bool("warm_start", warm_start)
        # Left out (None): the defaults, or a warm start's previous fit's (a network loaded
        # from a file written with a schedule of the user's own: its current rate, constant).
        previous = {}
        if warm_start and self._optimizer is not None:
            previous = {"learning_rate": float(self._hyper[H_LR]),
                         **getattr(self, "_fit_choices", {})}
        lr0 = check_positive_float("learning_rate", previous.get("learning_rate", 0.01)
                                   if learning_rate is None else learning_rate)
        opt = self._optimizer if optimizer is None and previous else \
            get_optimizer("sgd" if optimizer is None else optimizer)
        sched = previous.get("schedule", Constant()) if schedule is None else \
            get_schedule(schedule)
        alpha = check_nonnegative_float("alpha", alpha)
        clip_norm = check_optional_positive_float("clip_norm", clip_norm)
        clip_value = check_optional_positive_float("clip_value", clip_value)
        shuffle = check_bool("shuffle", shuffle)
        early_stopping = check_bool("early_stopping", early_stopping)
        verbose = check_bool("verbose", verbose)
        n_iter_no_change = check_int("n_iter_no_change", n_iter_no_change)
        if tol is not None:
            tol = check_nonnegative_float("tol", tol)
        if isinstance(sched, Adaptive) and tol is None and not early_stopping:
            raise ValueError("schedule='adaptive' lowers the rate when the loss stops improving "
                             "by tol; give tol (scikit-learn uses 1e-4) or early_stopping=True")
        callbacks = _check_callbacks(callbacks)
        n_threads = _check_threads(n_threads)
        if isinstance(opt, LBFGS):
            given = {"early_stopping": early_stopping,
                     "validation_data": validation_data is not None,
                     "clip_norm": clip_norm is not None, "clip_value": clip_value is not None,
                     "schedule": schedule is not None}
            ignored = [name for name, value in given.items() if value]
            if ignored:
                raise ValueError(f"L-BFGS takes none of {', '.join(ignored)}: it minimises the "
                                 "training loss over all of X, with no held-out data, clipping "
                                 "or schedule (a stochastic optimizer takes those)")

        with _counting(n_threads):  # (the check of a large X takes two threads)
            X, Y, SW = self._check_data(X, y, sample_weight)
        n = X.shape[0]
        train_rows = np.arange(n, dtype=np.int64)
        val = rng_before = None
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise TypeError("validation_data must be a tuple (X_val, y_val)")
            Xv = check_X(validation_data[0], self.dtype, self.n_features_in_, name="X_val")
            val = (Xv, check_targets(validation_data[1], Xv.shape[0], self.n_outputs_,
                                     self.output, self.dtype, name="y_val"), None)
        elif early_stopping:
            frac = validation_fraction
            if isinstance(frac, (bool, np.bool_)) or not isinstance(frac, (int, float, np.number)) \
                    or not 0 < frac < 1:
                raise ValueError(f"validation_fraction must be in (0, 1), got {frac!r}")
            n_val = int(np.ceil(n * frac))
            if n_val >= n:
                raise ValueError(f"validation_fraction={frac} leaves no training samples out of {n}")
            self._check_layers_take(opt, batch_size, n - n_val)  # (before the draw below)
            rng_before = _generator_state(self._rng)
            perm = self._rng.permutation(n)
            train_rows = np.sort(perm[n_val:]).astype(np.int64)
            held = perm[:n_val]
            val = (X[held], Y[held], None if sample_weight is None else SW[held])
        if early_stopping and tol is None:
            tol = 0.0
        return self._fit_validated(
            X, Y, SW, train_rows, val, epochs=epochs, batch_size=batch_size, lr0=lr0, opt=opt,
            sched=sched, alpha=alpha, clip_norm=clip_norm, clip_value=clip_value,
            shuffle=shuffle, early_stopping=early_stopping, n_iter_no_change=n_iter_no_change,
            tol=tol, callbacks=callbacks, verbose=verbose, warm_start=warm_start,
            n_threads=n_threads, keep_history=warm_start, new_rate=learning_rate is not None,
            rng_before=rng_before)

    def _fit_validated(self, X, Y, SW, train_rows, val, *, epochs, batch_size, lr0, opt, sched,
                       alpha, clip_norm, clip_value, shuffle, early_stopping, n_iter_no_change,
                       tol, callbacks, verbose, warm_start, n_threads, keep_history=False,
                       new_rate=False, rng_before=None):
        """``fit`` after validation: ``X``, ``Y``, ``SW`` converted, the rows to train on
        (in their unshuffled order) and the validation triple ``(X, Y, SW or None)`` chosen.
        ``keep_history``: where the optimizer starts afresh (no ``warm_start``, or another
        optimizer), the history still goes on (the losses and scores, the samples seen, the
        stopping rule's best and count): scikit-learn's ``warm_start``.  ``new_rate``: the
        rate ``lr0`` was given, and an adaptive schedule starts from it again.
        ``rng_before``: the generator's state before the caller drew the validation split,
        restored with the rest when the fit fails before any of its epochs is kept."""
        self._check_layers_take(opt, batch_size, train_rows.shape[0])  # (before anything changes)
        continuing = warm_start and self._hyper is not None and self._optimizer == opt
        before = self._training_state()
        if not continuing:
            if keep_history:
                self._lr = None    # (an adaptive rate starts again from lr0,
                self._perm = None  # and the visiting order from the rows' own)
            else:
                self._reset_training()
            self._optimizer = opt
            self._hyper = opt.hyper(lr0)
            self._opt_state = np.zeros((2, self._params.size), dtype=self.dtype)
        elif new_rate:
            self._lr = None  # (an adaptive schedule's current rate: from lr0 again)
        self._fit_choices = {"learning_rate": lr0, "schedule": sched}  # (for a warm start)
        hyper = self._hyper
        hyper[H_ALPHA] = alpha
        hyper[H_CLIP_NORM] = clip_norm or 0.0
        hyper[H_CLIP_VALUE] = clip_value or 0.0

        start = self.n_iter_
        try:
            with _threads(n_threads):
                if isinstance(opt, LBFGS):
                    return self._fit_lbfgs(X, Y, SW, train_rows, epochs, alpha, opt, tol,
                                           callbacks)
                self._fit_stochastic(X, Y, SW, train_rows, val, epochs, batch_size, lr0, sched,
                                     shuffle, early_stopping, n_iter_no_change, tol, callbacks,
                                     verbose)
        except BaseException:
            if self.n_iter_ == start:
                # No epoch of this fit is kept (the weights are back where it began): nor its
                # optimizer, rates and reset history, so that the next fit, a warm start
                # left to its defaults say, goes on from the last good fit's.
                self._restore_training_state(before)
                if rng_before is not None:
                    _set_generator_state(self._rng, rng_before)
            raise
        return self

    def _check_layers_take(self, opt, batch_size, n_train):
        """Whether the layers can train with ``opt`` on minibatches of ``batch_size`` out of
        ``n_train`` rows: L-BFGS takes neither dropout nor batch normalization, which needs
        two samples a minibatch."""
        if isinstance(opt, LBFGS):
            _check_lbfgs_layers(self.dropout, self.batch_norm)
        elif self.batch_norm and min(batch_size, n_train) < 2:
            raise ValueError("batch_norm needs minibatches of at least 2 samples: one sample "
                             "normalizes every unit to 0, and nothing trains (raise batch_size)")

    _TRAINING_STATE = ("_optimizer", "_opt_state", "_hyper", "_fit_choices", "_lr", "_epoch",
                       "n_iter_", "t_", "_no_improvement", "best_loss_", "best_validation_score_",
                       "loss_curve_", "_gradient_norms", "validation_scores_", "_dropout_epochs")

    def _training_state(self):
        """Everything a fit's start may replace or reset (see ``_restore_training_state``):
        references (a fit that starts afresh replaces the arrays and lists, and the trainer
        puts those it goes on with back in place), the lists' lengths, the visiting order."""
        state = {k: self.__dict__.get(k) for k in self._TRAINING_STATE}
        lengths = [len(self.__dict__[k]) for k in ("loss_curve_", "_gradient_norms",
                                                   "validation_scores_")]
        return state, lengths, None if self._perm is None else self._perm.copy()

    def _restore_training_state(self, saved):
        state, lengths, perm = saved
        self.__dict__.update(state)
        for k, n in zip(("loss_curve_", "_gradient_norms", "validation_scores_"), lengths):
            del self.__dict__[k][n:]
        self._perm = perm
        if state["_fit_choices"] is None:
            self.__dict__.pop("_fit_choices")

    def partial_fit(self, X, y, **kwargs):
        """One epoch on ``(X, y)``, continuing the optimizer state of earlier fits.

        Takes the keyword arguments of ``fit`` except ``epochs`` and ``warm_start``.
        """
        for name in ("epochs", "warm_start"):
            if name in kwargs:
                raise TypeError(f"partial_fit() got an unexpected keyword argument {name!r}")
        return self.fit(X, y, epochs=1, warm_start=True, **kwargs)

    def _fit_stochastic(self, X, Y, SW, train_rows, val, epochs, batch_size, lr0, sched, shuffle,
                        early_stopping, n_iter_no_change, tol, callbacks, verbose):
        params = self._params
        n_train = train_rows.shape[0]
        # One batch of everything: a new order would only permute the terms of its sums.
        shuffle = shuffle and batch_size < n_train
        if self._perm is None or self._perm.shape[0] != n_train:
            self._perm = np.arange(n_train, dtype=np.int64)
        # The best epoch's weights and running statistics, for early stopping.
        best_params = (params.copy(), self._stats.copy()) if early_stopping else None
        epoch0 = self._epoch  # (for schedules that count this fit's epochs)
        if self._lr is None:
            self._lr = lr0
        bar = _progress_bar(epochs) if verbose else None
        # Nothing to do between epochs but the training loss's stopping rule (no validation,
        # callback, progress bar or adaptive rate): several epochs go to the kernel in one
        # call, which applies the rule itself, so that Python's per-epoch cost does not
        # dominate small networks.
        batched = (val is None and not early_stopping and not callbacks and bar is None
                   and not isinstance(sched, Adaptive))
        per_call = _epochs_per_call(epochs, n_train, params.size) if batched else 1
        trainer = _Trainer(self, X, Y, SW, min(batch_size, n_train), train_rows,
                           call_rows=per_call * n_train)
        done = 0
        history = self._history(shuffle)
        try:
            with trainer, _ctrl_c_after_epoch() as interrupted:
                while done < epochs:
                    if done:  # the last commit's (taken here, so a fit's last costs none)
                        history = self._history(shuffle)
                    k = _epochs_per_call(epochs - done, n_train, params.size) if batched else 1
                    if k > 1:
                        orders, rates = self._plan_epochs(k, train_rows, shuffle, lr0, sched,
                                                          epochs, epoch0)
                        stopping = None if tol is None else np.array(
                            [tol, n_iter_no_change,
                             np.inf if self.best_loss_ is None else self.best_loss_,
                             self._no_improvement], dtype=np.float64)
                        try:
                            losses = trainer.run(orders, k, rates=rates, stopping=stopping)
                        except DivergenceError:
                            # Replay epoch by epoch from the same state (the last commit's,
                            # generator and visiting order included), so that the error and
                            # the restored weights are those of the failing epoch.
                            trainer.rollback()
                            self._restore_history(history)
                            batched = False
                            continue
                        ran = len(losses)
                        stopped = stopping is not None and stopping[3] > stopping[1]
                        if ran < k and shuffle:
                            # Stopped early: the generator and the order as if only the
                            # epochs that ran had drawn their shuffles.
                            self._redraw(history, ran, train_rows)
                        self._finish_epochs(losses, n_train, trainer.norms)
                        best = float(losses.min())
                        if self.best_loss_ is None or best < self.best_loss_:
                            self.best_loss_ = best
                        if stopping is not None:
                            self._no_improvement = int(stopping[3])
                        done += ran
                        trainer.commit()
                        if stopped:
                            break
                        if interrupted():
                            raise KeyboardInterrupt
                        continue
                    t0 = time.perf_counter()
                    orders, rates = self._plan_epochs(1, train_rows, shuffle, lr0, sched, epochs,
                                                      epoch0)
                    lr = float(rates[0])
                    losses = trainer.run(orders, 1, rates=rates)
                    loss = float(losses[0])
                    self._finish_epochs(losses, n_train, trainer.norms)
                    done += 1
                    metrics = {"loss": loss, "learning_rate": lr}
                    if val is not None:
                        # (outputs that overflow score as wrong, not as an error about X)
                        metrics["validation_score"] = self._score(*val, check=False)
                        self.validation_scores_.append(metrics["validation_score"])
                    stop = self._update_no_improvement(metrics, early_stopping, tol, best_params)
                    end = False  # (the stopping rule's; callbacks and the bar see this epoch)
                    if stop is not None and stop > n_iter_no_change:
                        if isinstance(sched, Adaptive) and self._lr > Adaptive.min_rate:
                            self._lr /= Adaptive.factor
                            self._no_improvement = 0
                        else:
                            end = True
                    metrics["epoch_time"] = time.perf_counter() - t0
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                                         if k != "epoch_time"})
                        bar.update(1)
                    halt = any([bool(cb(self.n_iter_, dict(metrics))) for cb in callbacks])
                    if callbacks and not all_finite(params):  # (a callback wrote them)
                        raise ValueError(f"a callback left non-finite weights after epoch "
                                         f"{self.n_iter_}: the network is back at its last "
                                         "epoch before")
                    if halt or end:
                        break
                    trainer.commit()
                    if interrupted():
                        raise KeyboardInterrupt
                if interrupted():
                    # (in the epoch that the stopping rule or a callback ended the fit on:
                    # the fit ends as it would have, and says that Ctrl-C came)
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if not np.isfinite(params.sum(dtype=np.float64)):
                trainer.rollback()
            warnings.warn(f"fit interrupted after {self.n_iter_} epochs; the network keeps "
                          "the weights of the last completed epoch", RuntimeWarning, stacklevel=3)
        except BaseException:
            # The trainer put the weights back to the last committed epoch (once more here:
            # a signal handler's exception may land in its exit before it did); so goes the
            # history.
            trainer.rollback()
            self._restore_history(history)
            raise
        finally:
            if bar is not None:
                bar.close()
        if early_stopping and self.best_validation_score_ is not None:
            params[:] = best_params[0]
            self._stats[:] = best_params[1]

    def _history(self, shuffle):
        """What an epoch adds to the history, as it stands (see ``_restore_history``);
        without ``shuffle`` (no epoch draws from the generator), not the generator's state."""
        return (self.n_iter_, self.t_, self._epoch, self._lr, self._no_improvement,
                self.best_loss_, self.best_validation_score_, self._dropout_epochs,
                len(self.loss_curve_), len(self._gradient_norms), len(self.validation_scores_),
                _generator_state(self._rng) if shuffle else None,
                None if self._perm is None else self._perm.copy())

    def _restore_history(self, h):
        """Back to the history ``h`` of ``_history`` (which stays usable for another restore)."""
        (self.n_iter_, self.t_, self._epoch, self._lr, self._no_improvement, self.best_loss_,
         self.best_validation_score_, self._dropout_epochs, n_loss, n_norms, n_scores, rng,
         perm) = h
        self._perm = None if perm is None else perm.copy()  # shuffles permute it in place
        del self.loss_curve_[n_loss:], self._gradient_norms[n_norms:]
        del self.validation_scores_[n_scores:]
        if rng is not None:
            _set_generator_state(self._rng, rng)

    def _redraw(self, h, k, train_rows):
        """The generator and the visiting order back to those of the history ``h`` (its
        last two fields, see ``_history``), then ``k`` epochs' shuffles drawn from there."""
        _set_generator_state(self._rng, h[-2])
        self._perm[:] = h[-1]
        _draw_epoch_orders(self._rng, self._perm, train_rows, k)

    def _plan_epochs(self, k, train_rows, shuffle, lr0, sched, epochs, epoch0):
        """Visiting orders ``(k or 1, n_train)`` and learning rates ``(k,)`` of the next
        ``k`` epochs, drawing the shuffles as ``k`` single epochs would; ``epoch0``: the
        schedule's epoch count when this fit began."""
        n_train = train_rows.shape[0]
        if shuffle:
            # Each epoch permutes the previous order (scikit-learn's draws of
            # rng.permutation, made in compiled code); a warm start continues from the last.
            orders = _draw_epoch_orders(self._rng, self._perm, train_rows, k)
        else:
            orders = train_rows[self._perm].reshape(1, -1)
        if isinstance(sched, Adaptive):
            rates = np.full(k, self._lr)
        else:
            # (a schedule whose curve spans one fit counts its epochs from the fit's first)
            epoch = self._epoch - epoch0 if getattr(sched, "per_fit", False) \
                else self._epoch
            rates = sched.rates(lr0, epoch, k, epochs, self.t_, n_train)
            if type(sched) is not Constant:  # (lr0 itself was checked)
                rates = _check_rates(sched, rates, k)
        return orders, rates

    def _layer_norms(self, g):
        """Norm of each layer's weights in the flat vector ``g``."""
        return np.array([np.linalg.norm(g[w0:w0 + n_in * n_out].astype(np.float64))
                         for n_in, n_out, _, w0, *_ in self._table], dtype=np.float64)

    def _finish_epochs(self, losses, n_train, norms):
        """Record epochs that went well: their mean losses and gradient norms (one row per
        epoch of a fresh array, kept as it is, one block)."""
        k = len(losses)
        self._epoch += k
        self.n_iter_ += k
        self.t_ += k * n_train
        self.loss_curve_.extend(losses.tolist())
        self._gradient_norms.append(norms)

    @property
    def gradient_norms_(self):
        """ndarray of shape (n_epochs, n_layers): for each epoch, the norm of each layer's
        weight gradient (L2 term included, before clipping), averaged over the epoch's
        minibatches (L-BFGS: the full-data gradient at each iteration's point).  Layers
        whose gradients are orders of magnitude below the last one's are not learning
        (vanishing gradients); fast-growing norms foretell divergence."""
        n_layers = self._table.shape[0]
        # (_gradient_norms holds one block of rows per kernel call, or one row per L-BFGS
        # iteration: a row per epoch would be an object per epoch for the history to keep)
        return np.concatenate([np.empty((0, n_layers))] + [
            np.asarray(block, dtype=np.float64).reshape(-1, n_layers)
            for block in self._gradient_norms])

    def _update_no_improvement(self, metrics, early_stopping, tol, best_params):
        """scikit-learn's bookkeeping of the best loss / score; returns the count of epochs
        without improvement, or None when no stopping rule applies."""
        loss = metrics["loss"]
        if self.best_loss_ is None or loss < self.best_loss_:
            prev_best = self.best_loss_
            self.best_loss_ = loss
        else:
            prev_best = self.best_loss_
        score = metrics.get("validation_score")
        prev_score = self.best_validation_score_
        if score is not None and (prev_score is None or score > prev_score):
            self.best_validation_score_ = score
            if best_params is not None:
                best_params[0][:] = self._params
                best_params[1][:] = self._stats
        if early_stopping:
            improved = prev_score is None or score >= prev_score + tol
        elif tol is not None:
            improved = prev_best is None or loss <= prev_best - tol
        else:
            return None
        self._no_improvement = 0 if improved else self._no_improvement + 1
        return self._no_improvement

    def _fit_lbfgs(self, X, Y, SW, train_rows, epochs, alpha, opt, tol, callbacks):
        from scipy.optimize import minimize

        params = self._params
        last_good = params.copy()
        grads = _GradientBuffers(self, len(train_rows))

        last = {}

        def fun(theta):
            params[:] = theta
            loss, g = grads.compute(X, Y, SW, train_rows, alpha)
            last["theta"], last["g"] = theta.copy(), g
            return loss, g.astype(np.float64)

        stopped = []
        completed = params.copy()  # the last iterate L-BFGS accepted (kept on Ctrl-C)
        committed = params.copy()  # the last one whose callbacks returned (kept on errors)
        history = [self._history(False)]  # (and its history; no shuffles to undo)

        def callback(intermediate_result):
            loss = float(intermediate_result.fun)
            self.loss_curve_.append(loss)
            if not np.array_equal(last.get("theta"), intermediate_result.x):
                fun(intermediate_result.x)
            completed[:] = params
            self._gradient_norms.append(self._layer_norms(last["g"]))
            self.n_iter_ += 1
            self.t_ += len(train_rows)
            self.best_loss_ = loss if self.best_loss_ is None else min(self.best_loss_, loss)
            if any([bool(cb(self.n_iter_, {"loss": loss})) for cb in callbacks]):
                stopped.append(True)
                raise StopIteration
            committed[:] = params
            history[0] = self._history(False)

        result = None
        try:
            result = minimize(fun, params.astype(np.float64), jac=True, method="L-BFGS-B",
                              callback=callback,
                              options={"maxiter": epochs, "maxfun": opt.max_fun,
                                       "gtol": 1e-4 if tol is None else tol})
            params[:] = result.x
        except KeyboardInterrupt:
            params[:] = completed
            warnings.warn(f"fit interrupted after {self.n_iter_} iterations", RuntimeWarning,
                          stacklevel=3)
        except BaseException:
            params[:] = committed
            self._restore_history(history[0])
            raise
        if not np.isfinite(params.sum(dtype=np.float64)):
            params[:] = last_good
            raise DivergenceError("L-BFGS produced non-finite weights; the previous weights "
                                  "were restored. Scale the inputs or raise alpha.")
        self.lbfgs_result_ = None if stopped or result is None else result
        return self

    # -- inference ------------------------------------------------------------------------------

    def forward(self, X):
        """Output-layer values of shape (n_samples, n_outputs): probabilities for sigmoid and
        softmax outputs, raw values for identity."""
        X = check_X(X, self.dtype, self.n_features_in_)
        return self._forward(X)

    def _forward(self, X, check=True):
        """Output-layer values for validated X; with ``check``, a non-finite output raises
        ``ValueError`` instead of being returned."""
        n = X.shape[0]
        chunk = min(n, _config.FORWARD_CHUNK)
        abuf_len, tmp_len = self._buffer_sizes(chunk)
        out = np.empty((n, self.n_outputs_), dtype=self.dtype)
        kernels(self._table, self.dtype).predict_rows(
            self._params, X, np.arange(n, dtype=np.int64), self._table, chunk,
            np.empty(abuf_len, dtype=self.dtype), np.empty(tmp_len, dtype=self.dtype), out,
            self._stats)
        if check and not np.isfinite(out).all():
            rows = int((~np.isfinite(out)).any(axis=1).sum())
            raise ValueError(
                f"X: the network's outputs overflow {self.dtype} on {rows} of {n} rows (inputs "
                f"up to {float(np.abs(X).max()):.3g} in magnitude); scale X, train with a "
                f"lower learning rate, or use float64")
        return out

    def predict(self, X):
        """Predictions: values for identity outputs, 0/1 labels for sigmoid, class indices for softmax.

        A single output gives shape (n_samples,), several give (n_samples, n_outputs);
        softmax always gives (n_samples,).
        """
        out = self.forward(X)
        if self.output == "softmax":
            return np.argmax(out, axis=1)
        if self.output == "sigmoid":
            out = (out > 0.5).astype(np.int64)
        return out[:, 0] if self.n_outputs_ == 1 else out

    def predict_proba(self, X):
        """Class probabilities; for a single sigmoid output, the columns are P(0) and P(1)."""
        if self.output not in ("sigmoid", "softmax"):
            raise ValueError(f"predict_proba needs output='sigmoid' or 'softmax'; this network's "
                             f"output is {self.output!r} (use forward or predict)")
        out = self.forward(X)
        if self.output == "sigmoid" and self.n_outputs_ == 1:
            return np.hstack([1 - out, out])
        return out

    def score(self, X, y, sample_weight=None):
        """Accuracy for sigmoid and softmax outputs (every label right, for multilabel),
        the coefficient of determination R^2 for identity and poisson outputs."""
        X, Y, SW = self._check_data(X, y, sample_weight)
        return self._score(X, Y, None if sample_weight is None else SW)

    def _score(self, X, Y, SW=None, check=True):
        out = self._forward(X, check)
        if self.output == "softmax":
            return float(np.average(out.argmax(axis=1) == Y.argmax(axis=1), weights=SW))
        if self.output == "sigmoid":
            return float(np.average(np.all((out > 0.5) == (Y > 0.5), axis=1), weights=SW))
        return _r2(Y, out, SW)

    def loss_and_gradients(self, X, y, alpha=0.0, sample_weight=None):
        """Mean loss over ``(X, y)`` (weighted by ``sample_weight``, with the L2 term
        ``alpha``) and its exact gradient.

        Returns
        -------
        loss : float
        coef_grads : list of ndarray of shape (n_in, n_out)
        intercept_grads : list of ndarray of shape (n_out,)
        scale_grads : list of ndarray of shape (n_out,)
            Only with ``batch_norm``: the gradients of ``scales_``.  The loss is then the
            training-mode one, each layer normalized by the statistics of all of ``X``.
        """
        alpha = check_nonnegative_float("alpha", alpha)
        X, Y, SW = self._check_data(X, y, sample_weight)
        loss, total = _GradientBuffers(self, X.shape[0]).compute(X, Y, SW, None, alpha)
        if not (np.isfinite(loss) and all_finite(total)):
            # (the loss sums in float64: a gradient can overflow float32 where it does not)
            raise ValueError(f"X: the loss or its gradient overflows {self.dtype} (inputs up "
                             f"to {float(np.abs(X).max()):.3g} in magnitude); scale X or use "
                             "float64")
        coef_grads, intercept_grads = weight_views(total, self._table)
        if self.batch_norm:
            return loss, coef_grads, intercept_grads, scale_views(total, self._table)
        return loss, coef_grads, intercept_grads


def _r2(Y, P, SW=None):
    """R^2 averaged over outputs, with scikit-learn's conventions for constant targets."""
    Y = Y.astype(np.float64)
    w = np.ones(len(Y)) if SW is None else SW.astype(np.float64)
    w = w[:, None]
    ss_res = (w * (Y - P) ** 2).sum(axis=0)
    ss_tot = (w * (Y - np.average(Y, axis=0, weights=w[:, 0])) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / ss_tot, np.where(ss_res > 0, 0.0, 1.0))
    return float(r2.mean())


class _GradientBuffers:
    """Buffers for full-data loss and gradient, ``FORWARD_CHUNK`` rows at a time (all rows
    at once with batch normalization, whose statistics are then those of the whole data)."""

    def __init__(self, net, n):
        self.net = net
        self.chunk = max(n, 1) if net.batch_norm else min(n, _config.FORWARD_CHUNK)
        abuf_len, tmp_len = net._buffer_sizes(self.chunk)
        self.abuf = np.empty(abuf_len, net.dtype)
        self.tmp = np.empty(tmp_len, net.dtype)
        self.scratch = np.empty_like(net._params)

    def compute(self, X, Y, SW, rows, alpha):
        """(weighted mean loss, gradient copy) over ``rows`` of X (all rows when None)."""
        net = self.net
        if rows is None:
            rows = np.arange(X.shape[0], dtype=np.int64)
        total = np.empty_like(net._params)
        loss = kernels(net._table, net.dtype).data_gradient(
            net._params, X, Y, SW, rows, net._table, self.chunk, alpha, self.abuf, self.tmp,
            self.scratch, total, net._stats)
        return float(loss), total


class _Trainer:
    """Buffers of one fit and the guard that keeps the weights usable when training fails.

    On an exception inside its ``with`` block the weights go back to those of the
    last committed epoch.  ``rows``: the training rows, of which the first batch probes
    the weights at the end of each kernel call (None: no probe; the outputs of a sigmoid or
    softmax network are finite whenever its weights are).  ``call_rows``: the rows each
    kernel call trains on, for the slicing rule (``_split_parts``).
    """

    def __init__(self, net, X, Y, SW, batch, rows=None, call_rows=None):
        self.net, self.X, self.Y, self.SW = net, X, Y, SW
        self.batch = batch
        self.probe = _NO_ROWS if rows is None else np.ascontiguousarray(rows[:batch],
                                                                         dtype=np.int64)
        self.parts = _split_parts(net, batch, call_rows)
        # (rows of the buffers: one per slice of a batch, see run_epochs)
        rows = batch if self.parts == 1 else max(-(-batch // self.parts),
                                                 2 * _config.SPLIT_MIN_ROWS)
        abuf_len, tmp_len = net._buffer_sizes(rows)
        self.abufs = np.empty((self.parts, abuf_len), dtype=net.dtype)
        self.tmps = np.empty((self.parts, tmp_len), dtype=net.dtype)
        self.firsts = np.empty((self.parts, _first_split(net, self.parts, batch)),
                               dtype=net.dtype)
        # Whether a slice calls BLAS (a slice has at most ``rows`` rows; see _calls_blas),
        # or the parts do, for a first layer split by its inputs.
        self.slices_call_blas = self.parts > 1 and (self.firsts.shape[1] > 0 or any(
            _calls_blas(n_in, n_out, rows) for n_in, n_out in zip(net.layers[:-1], net.layers[1:])))
        self.grad = np.empty_like(net._params)
        self.grads = np.empty((self.parts - 1, net._params.size), dtype=net.dtype)
        self.last_good = net._params.copy()
        # (plain SGD keeps no state: its array is never written, nor copied here)
        state = net._opt_state.copy() if net._optimizer.kind != SGD_KIND else None
        self._state_good = (state, net._hyper.copy(), net._stats.copy())

    def __enter__(self):
        # BLAS single-threaded for the whole block, not call by call: restored to two
        # threads in between, OpenBLAS's workers (woken by what ran between the calls)
        # kept spinning into the next call and took a core from its slices: 20,000 x 100
        # epochs ran at 84 ms against 40 ms.  Slices that never call BLAS leave it alone
        # (through threadpoolctl, where _single_threaded_blas needs it, each limit and
        # restore costs about 0.1 ms, a process's first one the library scan's 2 ms).
        self._blas = _single_threaded_blas(self.slices_call_blas)
        self._blas.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
                self.rollback()
        finally:
            blas, self._blas = self._blas, None
            blas.__exit__(None, None, None)
        return False

    def rollback(self):
        """Back to the state of the last commit."""
        self.net._params[:] = self.last_good
        if self._state_good[0] is not None:
            self.net._opt_state[:] = self._state_good[0]
        self.net._hyper[:] = self._state_good[1]
        self.net._stats[:] = self._state_good[2]

    def commit(self):
        """The epoch went well: it becomes the state to return to."""
        self.last_good[:] = self.net._params
        if self._state_good[0] is not None:
            self._state_good[0][:] = self.net._opt_state
        self._state_good[1][:] = self.net._hyper
        self._state_good[2][:] = self.net._stats

    def run(self, orders, n_epochs, want_loss=True, rates=None, stopping=None):
        """Run ``n_epochs`` epochs in one kernel call; returns their mean losses (and leaves
        each epoch's mean weight-gradient norm per layer in ``self.norms``).

        ``rates``: the learning rate of each epoch (default: the current one throughout).
        ``stopping``: the stopping rule's array (see ``run_epochs``), updated in place; the
        call may then run fewer epochs, and returns the losses of those it ran.

        Without ``want_loss`` the data part of the loss is not computed, which saves
        a logarithm per output and sample; divergence is then seen in the weights.
        """
        net = self.net
        params = net._params
        losses = np.empty(n_epochs, dtype=np.float64)
        self.norms = np.empty((n_epochs, net._table.shape[0]), dtype=np.float64)
        seeds = net._dropout_seed + net._dropout_epochs + np.arange(n_epochs, dtype=np.int64)
        if self.parts > 1 and getattr(self, "_blas", None) is None:
            raise RuntimeError("_Trainer.run with slices needs the trainer's with block")
        ran, shared = _run_parts(self.parts, (
            params, self.X, self.Y, self.SW, orders, net._table, self.batch,
            net._optimizer.kind, net._hyper, net._opt_state, self.abufs, self.tmps, self.firsts,
            self.grad,
            self.parts, self.grads, _NO_RATES if rates is None else rates, net.dropout, seeds,
            losses, self.norms, want_loss, net._stats,
            _NO_STOPPING if stopping is None else stopping, self.probe))
        if ran < n_epochs:
            losses, self.norms = losses[:ran], self.norms[:ran]
        # Each epoch's loss is taken before each batch's update, so the last update of the
        # call is seen only in the weights, and in the outputs they give a batch of rows.
        # (the kernel counted the probe's non-finite outputs into ``shared[:, 0]``)
        if not (all_finite(losses) and all_finite(params) and not shared[:, 0].any()):
            raise DivergenceError(
                f"training diverged (loss {float(losses[-1])!r}): the loss, the weights or "
                f"the outputs on the training data became non-finite. The learning rate "
                f"({net._hyper[H_LR]:g}) is the likely cause; lower it or scale the inputs. "
                f"The weights from before the failing epoch were restored.")
        net._dropout_epochs += ran
        return losses


_NO_RATES = np.empty(0, dtype=np.float64)
_NO_ROWS = np.empty(0, dtype=np.int64)
# (a negative tol: no stopping rule, and the kernel leaves the array alone)
_NO_STOPPING = np.array([-1.0, 0.0, np.inf, 0.0])


def _past_loops(n_in, n_out, nb):
    """``_kernels.dense.past_loops`` in Python (a kernel call would load one more compiled
    function at a first fit): whether a layer takes BLAS or the tiles rather than the
    fused loops."""
    return (min(n_in, n_out) >= _config.BLAS_MIN_WIDTH
            and n_in * n_out * nb >= _config.BLAS_MIN_WORK)


def _calls_blas(n_in, n_out, nb):
    """Whether a layer goes through BLAS on some batch of at most ``nb`` rows: past the
    loops' line (which rises with the rows) and not to the tiles, which take layers of at
    most ``TILE_MAX_WEIGHTS`` weights on batches of at most ``TILE_MAX_BATCH`` rows
    (``_kernels.dense.use_blas``; the tiles cover their own edges)."""
    return _past_loops(n_in, n_out, nb) and (n_in * n_out > _config.TILE_MAX_WEIGHTS
                                             or nb > _config.TILE_MAX_BATCH)


def _split_parts(net, batch, call_rows=None):
    """Into how many slices, one per thread (``_thread_count``), the kernel cuts a minibatch
    of ``batch`` rows (1: none; the rule and its measurements: ``_config.SPLIT_MAX_WORK``).
    ``call_rows``: the rows each kernel call trains on (epochs x samples), when known;
    calls with too little work for the threads' hand-over are not cut
    (``_config.SPLIT_MIN_CALL_WORK``), nor batches that run without BLAS into slices of
    fewer than ``_config.SPLIT_MIN_TILED_ROWS`` rows."""
    if net.batch_norm or net.dropout > 0 or batch * net._params.size > _config.SPLIT_MAX_WORK:
        return 1
    if (call_rows is not None and call_rows * (net._params.size + _config.SPLIT_ROW_COST)
            < _config.SPLIT_MIN_CALL_WORK):
        return 1
    rows = _config.SPLIT_MIN_ROWS
    if not any(_calls_blas(n_in, n_out, batch)
               for n_in, n_out in zip(net.layers[:-1], net.layers[1:])):
        rows = max(rows, _config.SPLIT_MIN_TILED_ROWS)
    return max(1, min(_thread_count(), batch // rows))


def _feature_range(n, parts, part):
    """``_kernels.epoch.feature_range`` in Python: the inputs ``lo:hi`` of a first layer of
    ``n`` inputs split by its inputs that part ``part`` of ``parts`` takes."""
    lo = (n * part // parts) // 16 * 16
    hi = n if part == parts - 1 else (n * (part + 1) // parts) // 16 * 16
    return lo, hi


def _first_split(net, parts, batch):
    """The length of each part's row of ``firsts`` (``_kernels.epoch.run_epochs``): 0 when
    the sliced batches keep the first layer whole; otherwise its outputs and the part's
    share of its inputs (``_feature_range``) over a whole batch.  The first layer is split
    by its inputs when the batch is sliced, the layer has the shape
    ``_variants.splittable_first`` names, and it takes BLAS or the tiles on the whole batch."""
    n_in, n_out = net.layers[0], net.layers[1]
    if (parts < 2 or not splittable_first(net._table, parts)
            or not _past_loops(n_in, n_out, batch)):
        return 0
    share = max(hi - lo for lo, hi in (_feature_range(n_in, parts, p) for p in range(parts)))
    return (n_out + share) * batch


#: Tries of a step that puts a process-wide setting back (the CPUs a thread may run on,
#: BLAS's threads) before its exception is raised: a signal handler's exception lands
#: once, at any step (the step is then tried again), while an error that comes back each
#: time must be raised, not looped on.  The loop is written out in each ``finally`` that
#: needs it (_run_parts, _single_threaded_blas, _blas_limit), with no call before its
#: ``try`` (``range()`` was one): a function holding it, or that call, could be interrupted
#: at its own entry, before it had restored anything.
_RETRIES = 3


def _run_parts(parts, args):
    """``run_epochs(*args, part, sync, shared)`` in ``parts`` threads at once: part 0
    in this one, the others in the process's worker threads (see ``_kernels.sync``).
    Returns the epochs run and ``shared`` (the probe's counts in its first column).

    One sliced call at a time in a process: with calls from several Python threads
    sharing the workers, one call's parts could wait for workers held by another's, each
    for the other.  A part that fails sets the abort flag, which releases the others at
    their next barrier; its exception is raised here."""
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    shared = np.zeros((parts, 3 + args[5].shape[0]), dtype=np.float64)  # (args[5]: layers)
    run = kernels(args[5], args[0].dtype).run_epochs  # (args[0]: the weights)
    if parts == 1:
        return run(*args, np.int64(0), sync, shared), shared
    with _WORKERS_LOCK:
        workers = _workers(parts - 1)
        cpus = _Cpus.for_parts(parts)
        queued = []
        try:
            for p, worker in enumerate(workers[:parts - 1], start=1):
                part = _Part(cpus, (run, args, np.int64(p), sync, shared))
                worker.jobs.put(part)
                # (listed after: an exception between the two leaves one part unwaited for,
                # which is harmless, as its outcome is its own; listed before, a part never
                # queued would be waited for)
                queued.append(part)
            before = _affinity(cpus)
            try:
                _pin(cpus)
                ran = _run_part(run, args, np.int64(0), sync, shared)
            finally:
                # Again if an exception interrupted it: a signal handler's, pending since the
                # kernel call, can land at the entry of the next function called; it is
                # raised after.
                pending = None
                tries = 0  # (see _RETRIES)
                while tries < _RETRIES:
                    tries += 1
                    try:
                        _restore_affinity(before)
                        break
                    except BaseException as exc:
                        pending = pending or exc
                if pending is not None:
                    raise pending
        except BaseException:
            # (an exception raised here by a signal handler, not only by the part: the
            # workers' parts must not wait at a barrier for this one)
            sync[ABORT] = 1
            raise
        finally:
            _wait(queued, sync)
        for part in queued:
            if part.error is not None:
                raise part.error
    return ran, shared


class _Part:
    """One part of a sliced call, for a worker: its CPUs and ``_run_part``'s arguments, then
    its outcome (``error``: None or its exception; ``done`` set after, then ``lock``
    released: it is taken, held, from the start)."""

    __slots__ = ("cpus", "args", "error", "done", "lock")

    def __init__(self, cpus, args):
        self.cpus, self.args, self.error, self.done = cpus, args, None, False
        self.lock = threading.Lock()
        self.lock.acquire()


def _wait(parts, sync):
    """Until the workers have finished ``parts`` (every part returns: a failed one set the
    abort flag, which releases the others).  An exception raised while waiting (a signal
    handler's) sets the abort flag too, and is raised once every part is done: a worker
    left running would hold its buffers and CPU.

    A plain lock per part, and its ``done`` flag read before each wait: an exception can
    land between any two steps here, and neither a lost result (a queue of results: the
    wait for a result taken but not counted never ended) nor a lock left taken
    (``threading.Event``, whose condition an exception inside ``wait`` left held: the next
    wait hung, or raised "release unlocked lock") may follow.  An interrupted
    ``acquire`` takes nothing, and one that took the lock finds ``done`` set after."""
    pending, i = None, 0
    while True:
        try:
            while i < len(parts):
                if parts[i].done:
                    i += 1
                else:
                    parts[i].lock.acquire()
            break
        except BaseException as exc:
            sync[ABORT] = 1
            pending = pending or exc
    if pending is not None:
        raise pending


def _run_part(run, args, part, sync, shared):
    try:
        return run(*args, part, sync, shared)
    except BaseException:
        sync[ABORT] = 1
        raise


class _Worker:
    """A thread that runs the parts it is given (``jobs``: ``_Part`` objects), and reports
    each one's outcome in it.  Plain queues: a round trip
    through ``concurrent.futures`` cost about 140 us here, through these about 20 us
    (a 1-epoch fit of the tiny workload takes 400 us)."""

    def __init__(self):
        self.jobs = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="fastbp-part", daemon=True).start()

    def _serve(self):
        while True:
            part = self.jobs.get()
            before = _affinity(part.cpus)
            try:
                _pin(part.cpus)
                _run_part(*part.args)
            except BaseException as exc:  # (raised in the caller's thread)
                part.error = exc
            finally:
                try:
                    _restore_affinity(before)
                finally:
                    part.done = True
                    part.lock.release()


class _Cpus:
    """The CPUs the parts of one sliced call take, one each (``_pin``).

    The parts wait for each other spinning, so two of them must not share a CPU: Linux
    woke the worker threads on the CPU of the thread that woke them, where they waited
    behind a spinning part until the balancer moved them (the tiny workload ran at
    0.06-0.13 ms per epoch, 0.035-0.04 pinned, 2 cores).  Each part keeps the CPU it is
    running on when that one is free (the scheduler chose it, which spreads the processes
    of a machine), else takes the first free one it may run on."""

    def __init__(self, allowed):
        self.allowed = allowed
        self.taken = set()
        self.lock = threading.Lock()

    @classmethod
    def for_parts(cls, parts):
        """None when this thread may run on fewer than ``parts`` CPUs, or where threads cannot
        be pinned (not Linux): the parts are then left where the scheduler puts them."""
        if _CURRENT_CPU is None:
            return None
        try:
            allowed = sorted(os.sched_getaffinity(0))
        except OSError as exc:
            _reraise_unless_errno(exc)
            return None
        return cls(allowed) if len(allowed) >= parts else None

    def take(self):
        """A free CPU for the calling thread, marked taken."""
        with self.lock:
            cpu = _CURRENT_CPU()
            if cpu in self.taken or cpu not in self.allowed:
                cpu = next(c for c in self.allowed if c not in self.taken)
            self.taken.add(cpu)
            return cpu


def _current_cpu_function():
    """glibc's ``sched_getcpu``, or None where it or ``os.sched_setaffinity`` is missing."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        import ctypes

        getcpu = ctypes.CDLL(None).sched_getcpu
    except (AttributeError, OSError):
        return None
    getcpu.restype = ctypes.c_int
    getcpu.argtypes = []
    return getcpu


_CURRENT_CPU = _current_cpu_function()


def _affinity(cpus):
    """This thread's CPUs, to restore after ``_pin(cpus)``: None where ``cpus`` is None or
    they cannot be read (nothing to restore)."""
    if cpus is None:
        return None
    try:
        return os.sched_getaffinity(0)
    except OSError as exc:
        _reraise_unless_errno(exc)
        return None


def _pin(cpus):
    """This thread on one CPU of ``cpus`` (a ``_Cpus``; None: as it is).  Where pinning fails
    (the CPUs changed under the process), as it is.

    Call it inside a ``try`` whose ``finally`` restores ``_affinity(cpus)``, taken before
    the ``try``: a signal handler's exception can land anywhere, just after the pinning
    too, and only then is nothing left pinned (a generator's context manager left such a
    thread pinned until the garbage collector closed the generator)."""
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, {cpus.take()})
    except StopIteration:
        pass
    except OSError as exc:
        _reraise_unless_errno(exc)


def _restore_affinity(cpus):
    """This thread back on ``cpus`` (None: nothing to do)."""
    if cpus is not None:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError as exc:
            _reraise_unless_errno(exc)


def _reraise_unless_errno(exc):
    """Raise ``exc``, an ``OSError`` caught around a system call, unless the call raised it
    (it then has an errno): a signal handler's exception lands as the call returns, and a
    timeout's ``TimeoutError`` is an ``OSError`` too, which must not be taken for the
    call's failure and dropped (the thread was then left pinned)."""
    if exc.errno is None:
        raise exc


def _workers(n):
    """At least ``n`` worker threads of this process (call with ``_WORKERS_LOCK`` held).  New
    ones in a forked child: the threads of the parent's are not there."""
    if _WORKERS["pid"] != os.getpid():
        _WORKERS.update(pid=os.getpid(), threads=[])
    threads = _WORKERS["threads"]
    while len(threads) < n:
        threads.append(_Worker())
    return threads


_WORKERS_LOCK = threading.Lock()
_WORKERS = {"pid": None, "threads": []}


def _thread_count():
    """Threads a fit in this Python thread uses: its ``n_threads``; else Numba's thread
    count when the program set one (``numba.set_num_threads``); else
    ``NUMBA_NUM_THREADS`` (the machine's cores unless set in the environment).  fastbp
    does not start Numba's thread pool itself (about 50 ms, and unused)."""
    n = getattr(_THREAD_COUNT, "n", None)
    if n:
        return n
    if getattr(_numba_parallel, "_is_initialized", False):
        return numba.get_num_threads()
    return numba.config.NUMBA_NUM_THREADS


_THREAD_COUNT = threading.local()


@contextlib.contextmanager
def _single_threaded_blas(active):
    """BLAS on one thread inside, when ``active`` (the kernel's slices run in threads of
    their own, one per core; OpenBLAS threads of their own would oversubscribe the cores)."""
    if not active:
        yield
        return
    if blas.THREADS is None:
        with _BLAS_LOCK:
            controller = _controller()
            with _blas_control():
                limiter = controller.limit(limits=1, user_api="blas")
        try:
            yield
        finally:
            with _BLAS_LOCK, _blas_control():
                limiter.restore_original_limits()
        return
    # The OpenBLAS the kernels call, directly (0.1 ms a fit less than threadpoolctl): the
    # first of overlapping blocks sets one thread, the last one out puts the count back.
    # Each block is a token in a set, added and removed in one step, and the count is put
    # back again if an exception interrupted the first try (_RETRIES): a signal handler's
    # exception can land between any two steps (a count of blocks, not yet raised when the
    # first had set one thread, left OpenBLAS on one thread for the rest of the process).
    get, put = blas.THREADS
    token = object()
    try:
        with _BLAS_LOCK:
            if not _ONE_THREAD["blocks"]:
                _ONE_THREAD["before"] = get()
            _ONE_THREAD["blocks"].add(token)
            put(1)
        yield
    finally:
        pending = None
        tries = 0  # (see _RETRIES)
        while tries < _RETRIES:
            tries += 1
            try:
                _leave_one_thread(token, put)
                break
            except BaseException as exc:
                pending = pending or exc
        if pending is not None:
            raise pending


def _leave_one_thread(token, put):
    """``_single_threaded_blas``'s block ``token`` closed, the thread count put back if it
    was the last (idempotent: its caller tries again where an exception interrupted it)."""
    with _BLAS_LOCK:
        blocks = _ONE_THREAD["blocks"]
        blocks.discard(token)
        if not blocks and _ONE_THREAD["before"] is not None:
            put(_ONE_THREAD["before"])


# the blocks of _single_threaded_blas open, the thread count from before the first
_ONE_THREAD = {"blocks": set(), "before": None}


def _draw_epoch_orders(rng, perm, rows, k):
    """``k`` epochs of compounding shuffles from the ``RandomState`` ``rng``: returns the
    ``(k, n)`` orders, updates ``perm`` in place and advances ``rng`` as ``k`` calls of
    ``rng.permutation(n)`` would: in compiled code, on the MT19937's state read and written
    in the generator's memory (``_mt19937_address``).  Falls back to those calls where that
    memory is not found (another bit generator), and for a single epoch (NumPy's own draw is
    as fast then)."""
    n = perm.shape[0]
    orders = np.empty((k, n), dtype=np.int64)
    address = _mt19937_address(rng) if k > 1 else None
    if address is None:
        for e in range(k):
            perm[:] = perm[rng.permutation(n)]
            orders[e] = rows[perm]
        return orders
    # Under the generator's lock, as NumPy's own draws are: another thread drawing from the
    # same generator meanwhile (NumPy's global one, say) waits instead of drawing from
    # the state this copy is about to overwrite (it would then draw the same numbers again).
    with rng._bit_generator.lock:
        words = np.frombuffer(ctypes.string_at(address, _MT_BYTES), dtype=np.uint32)
        key, pos = words[:_MT_KEY].astype(np.int64), words[_MT_KEY:].astype(np.int64)
        epoch_orders(key, pos, perm, rows, orders, np.empty(2 * n, dtype=np.int64))
        ctypes.memmove(address, np.concatenate([key, pos]).astype(np.uint32).tobytes(),
                       _MT_BYTES)
    return orders


#: NumPy's MT19937 state in memory: 624 key words (uint32), then the position (a C int).
_MT_KEY = 624
_MT_BYTES = 4 * (_MT_KEY + 1)
_MT_LAYOUT = [None]  # (whether that layout was found, checked once per process)


def _mt19937_address(rng):
    """The address of the MT19937 state behind the RandomState ``rng``, or None for another
    generator, or where NumPy does not lay the state out as ``_MT_KEY`` says (checked once,
    against the generator's own ``state``).  Reading and writing it there costs about 2 us;
    NumPy's ``get_state`` and ``set_state`` about 45 us each (a dict and arrays built)."""
    bitgen = getattr(rng, "_bit_generator", None)
    if not isinstance(bitgen, np.random.MT19937):
        return None
    address = bitgen.ctypes.state_address
    if _MT_LAYOUT[0] is None:
        state = bitgen.state["state"]
        words = np.frombuffer(ctypes.string_at(address, _MT_BYTES), dtype=np.uint32)
        _MT_LAYOUT[0] = bool(np.array_equal(words[:_MT_KEY], state["key"])
                             and int(words[_MT_KEY]) == int(state["pos"]))
    return address if _MT_LAYOUT[0] else None


def _generator_state(rng):
    """A copy of the state of the RandomState ``rng``, for ``_set_generator_state``: its
    MT19937's memory where ``_mt19937_address`` finds it, else ``get_state``'s dict."""
    address = _mt19937_address(rng)
    if address is None:
        return rng.get_state(legacy=False)
    with rng._bit_generator.lock:  # (a whole state, not one torn by another thread's draw)
        return ctypes.string_at(address, _MT_BYTES)


def _set_generator_state(rng, state):
    """``rng`` back to a state of ``_generator_state`` (taken from this very generator)."""
    if isinstance(state, bytes):
        with rng._bit_generator.lock:
            ctypes.memmove(_mt19937_address(rng), state, _MT_BYTES)
    else:
        rng.set_state(state)


def _epochs_per_call(remaining, n_train, n_params):
    """How many epochs one kernel call runs when nothing happens between epochs: enough to
    make Python's per-epoch cost negligible, few enough to keep each call under about
    ``_config.EPOCH_CALL_WORK`` multiply-adds (Ctrl-C waits for the call) and the orders
    under ``_config.EPOCH_CALL_ROWS`` indices."""
    by_work = _config.EPOCH_CALL_WORK // max(1, n_train * n_params)
    by_rows = _config.EPOCH_CALL_ROWS // max(1, n_train)
    return int(max(1, min(remaining, by_work, by_rows)))


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    if callable(callbacks):
        callbacks = [callbacks]
    try:
        callbacks = list(callbacks)
    except TypeError:
        raise TypeError(f"callbacks must be a callable or a list of callables, got "
                        f"{type(callbacks).__name__} {callbacks!r}") from None
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise TypeError(f"callbacks[{i}] must be callable, got {cb!r}")
    return callbacks


def _check_rates(sched, rates, k):
    """The ``k`` learning rates a schedule gave, as float64: finite and non-negative (a
    custom ``Schedule`` could give anything)."""
    try:
        out = np.asarray(rates, dtype=np.float64)
    except (TypeError, ValueError):
        out = None
    if out is None or out.shape != (k,):
        raise TypeError(f"{sched!r} gave {rates!r}: a schedule's rates are {k} numbers")
    bad = np.flatnonzero(~(np.isfinite(out) & (out >= 0)))
    if bad.size:
        raise ValueError(f"{sched!r} gave the learning rate {float(out[bad[0]])!r} ({bad.size} of "
                         f"{k} epochs' rates bad): rates must be finite and non-negative")
    return out


def _check_lbfgs_layers(dropout, batch_norm):
    """L-BFGS takes neither dropout nor batch normalization (both make each step's
    objective a different one)."""
    for name, value in (("dropout", dropout), ("batch_norm", batch_norm)):
        if value:
            raise ValueError(f"{name} needs a stochastic optimizer: L-BFGS minimises one "
                             "fixed objective (use 'sgd', 'adam', ...)")


def _check_threads(n_threads):
    """``n_threads`` checked, and capped at ``NUMBA_NUM_THREADS``, the ceiling of this process
    (the machine's cores unless set: joblib's workers set it to their share), as OpenMP
    caps a request for more threads than it may use, rather than failing in the one
    process where a parallel search runs the same estimator."""
    if n_threads is None:
        return None
    return min(check_int("n_threads", n_threads), numba.config.NUMBA_NUM_THREADS)


@contextlib.contextmanager
def _counting(n_threads):
    """``_threads`` without BLAS's limit: only fastbp's own count (None: as it is)."""
    before = getattr(_THREAD_COUNT, "n", None)
    if n_threads is not None:
        _THREAD_COUNT.n = n_threads
    try:
        yield
    finally:
        _THREAD_COUNT.n = before


@contextlib.contextmanager
def _threads(n_threads):
    """fastbp's thread count in this Python thread (``_thread_count``) and BLAS's set to
    ``n_threads`` inside, restored after."""
    if n_threads is None:
        yield
        return
    with _counting(n_threads):
        with _blas_limit(n_threads):
            yield


@contextlib.contextmanager
def _blas_limit(n_threads):
    """BLAS's threads set to ``n_threads`` inside (see ``_threads``), restored after."""
    # BLAS's limit is process-wide: the first of overlapping fits sets it, the last one
    # out puts it back (each restoring its own entry's value would leave n_threads behind).
    # Tokens and a loop, as in _single_threaded_blas.
    token = object()
    try:
        with _BLAS_LOCK:
            _BLAS[0].add(token)
            if _BLAS[1] is None:
                controller = _controller()
                with _blas_control():
                    _BLAS[1] = controller.limit(limits=n_threads)
        yield
    finally:
        pending = None
        tries = 0  # (see _RETRIES)
        while tries < _RETRIES:
            tries += 1
            try:
                _leave_blas_limit(token)
                break
            except BaseException as exc:
                pending = pending or exc
        if pending is not None:
            raise pending


def _leave_blas_limit(token):
    """``_blas_limit``'s block ``token`` closed, BLAS's limits restored if it was the last
    (idempotent, as ``_leave_one_thread``)."""
    with _BLAS_LOCK:
        _BLAS[0].discard(token)
        if not _BLAS[0] and _BLAS[1] is not None:
            with _blas_control():
                _BLAS[1].restore_original_limits()
            _BLAS[1] = None


@contextlib.contextmanager
def _blas_control():
    """threadpoolctl's limits on a process-wide OpenBLAS pool, from any thread (call with
    ``_BLAS_LOCK`` held).  threadpoolctl lets only one thread, the first that set a limit,
    change such a pool, and ignores the others: a fit in a worker thread (a threading
    backend's search, say) ran with the default BLAS threads, and a restore from any thread
    but the first was lost.  fastbp's limits are process-wide already (the first of
    overlapping fits sets them, the last one out restores them), so this thread takes the
    control for the call and gives it up after."""
    clear = getattr(_openblas_controller(), "clear_controlling_thread", None)
    if clear is not None:  # (threadpoolctl 3.8 and later; before, any thread could)
        clear(force=True)
    try:
        yield
    finally:
        if clear is not None:
            clear(force=True)


def _openblas_controller():
    from threadpoolctl import OpenBLASController

    return OpenBLASController


def _controller():
    """The process's threadpoolctl controller (call with ``_BLAS_LOCK`` held).  Finding the
    loaded libraries reads /proc/self/maps: about 2 ms, more than a small fit's epoch, so
    once per process."""
    if _BLAS[2] is None:
        from numba.np import linalg
        from threadpoolctl import ThreadpoolController

        try:
            # The BLAS Numba loads with its first kernel (SciPy's) must be there to be
            # seen; that load happens at the first kernel call anyway.
            linalg.ensure_blas()
        except ImportError:
            pass
        _BLAS[2] = ThreadpoolController()
    return _BLAS[2]


_BLAS_LOCK = threading.Lock()


def _after_fork_in_child():
    """A forked child has only the thread that forked: the locks and counts that other
    threads of the parent held (a sliced fit's workers' lock, the BLAS limits of fits in
    progress) start again, and BLAS gets back the thread count from before those fits."""
    global _WORKERS_LOCK, _BLAS_LOCK
    _WORKERS_LOCK = threading.Lock()
    _WORKERS.update(pid=os.getpid(), threads=[])
    _BLAS_LOCK = threading.Lock()
    if _ONE_THREAD["blocks"] and blas.THREADS is not None:
        blas.THREADS[1](_ONE_THREAD["before"])
    _ONE_THREAD["blocks"] = set()
    if _BLAS[1] is not None:
        with _blas_control():
            _BLAS[1].restore_original_limits()
    _BLAS[0], _BLAS[1] = set(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
# fits inside _threads now (a token each), the limiter the first of them set, the
# process's controller
_BLAS = [set(), None, None]


@contextlib.contextmanager
def _ctrl_c_after_epoch():
    """Defer Ctrl-C to the end of the current epoch; yields a function telling whether it came.

    Only in the main thread, and only when SIGINT has Python's default handler; a
    handler the user installed is left alone.
    """
    if (threading.current_thread() is not threading.main_thread()
            or _getsignal(_SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    received = []
    _setsignal(_SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield lambda: bool(received)
    finally:
        _setsignal(_SIGINT, signal.default_int_handler)


# ``signal``'s functions without its wrappers, which convert numbers and handlers to enums
# (a handler that is a function fails the conversion, by an exception caught): 30 us of
# each fit's 0.25 ms on a small network, for the two calls above.
try:
    from _signal import getsignal as _getsignal, signal as _setsignal
except ImportError:  # (an interpreter without CPython's module)
    _getsignal, _setsignal = signal.getsignal, signal.signal
_SIGINT = int(signal.SIGINT)


def _progress_bar(epochs):
    from tqdm.auto import tqdm

    return tqdm(total=epochs, unit="epoch", leave=True)
