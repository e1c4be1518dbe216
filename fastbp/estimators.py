"""MLPClassifier and MLPRegressor: scikit-learn's estimators, trained by fastbp's kernels.

The constructor parameters, defaults, fitted attributes and update rules are those
of ``sklearn.neural_network``'s estimators (the 1.9 series): the same random state
gives the same initial weights, the same validation split and the same shuffles.
fastbp's extras come after scikit-learn's parameters and default to its behaviour:

- ``solver='adamw'`` (PyTorch's AdamW, with ``weight_decay``), activations ``'leaky_relu'``,
  ``'elu'``, ``'softplus'``, ``'gelu'`` and ``'swish'``;
- ``dtype``: the training dtype (default: float32 input stays float32, anything else
  float64, as scikit-learn does);
- ``n_threads``: Numba and BLAS threads during fit;
- ``clip_norm``: gradient clipping by global norm.
- ``residual``: identity shortcuts around hidden layers of equal widths (default off);
  ``dropout``: inverted dropout on the hidden layers in training (default 0, the
  stochastic solvers only); ``batch_norm``: batch normalization of the hidden layers
  (default off, the stochastic solvers only).

Where scikit-learn's MLP is inconsistent, fastbp follows the mathematics:

- Multi-output squared error: the loss is the mean over outputs, and the gradient
  is that mean's gradient (scikit-learn sums the gradient over outputs, its issue
  #8349), so multi-output regressors take steps ``n_outputs`` times smaller.
- ``partial_fit`` exists for the stochastic solvers only, in both estimators
  (scikit-learn's regressor also offers it for ``lbfgs``).
- Sparse input is accepted and densified before training (the kernels read dense
  rows): memory grows to ``n_samples * n_features`` values.
- ``warm_start`` with ``early_stopping``: a fit whose epochs never beat the best
  validation score so far ends at the best weights.  scikit-learn's ends at its last
  epoch's: after a fit its best weights are the live arrays, which the next fit trains.
  (Otherwise a warm-started fit goes on as scikit-learn's: a new optimizer, the history,
  the samples seen and the stopping rule's count kept.)
- A warm start or ``partial_fit`` after ``activation`` (or ``hidden_layer_sizes``,
  ``dtype``, ``residual``, ``dropout``, ``batch_norm``) changed raises ``ValueError``: the
  network the first fit built is for those.  scikit-learn applies a new activation to the
  same weights.
"""
import re
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import (_check_sample_weight, check_array, check_is_fitted,
                                      column_or_1d, validate_data)

from . import optim
from ._validation import _check_finite, _convert, check_sample_weight
from .network import Network, _check_threads

_STOCHASTIC = ("sgd", "adam", "adamw")
#: The attributes only stochastic fits have, as in scikit-learn: its L-BFGS records no
#: losses per epoch (and leaves ``t_`` at 0).
_STOCHASTIC_HISTORY = ("loss_curve_", "best_loss_", "validation_scores_",
                       "best_validation_score_")

#: scikit-learn's names of output activations -> fastbp.Network's output names.
_OUTPUTS = {"identity": "identity", "logistic": "sigmoid", "softmax": "softmax",
            "exp": "poisson"}

_ARGUMENT = re.compile(r"\b(X|y|sample_weight|classes)\b")


class _naming:
    """Context manager: a ValueError or TypeError raised inside whose message names no
    argument is raised again with ``culprit()`` (the argument's name) in front, so that
    every input error says which input it is about (scikit-learn's "Complex data not
    supported" or numpy's "could not convert string to float" do not)."""

    def __init__(self, culprit):
        self.culprit = culprit

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None or not issubclass(exc_type, (ValueError, TypeError)) \
                or _ARGUMENT.search(str(exc)):
            return False
        try:
            named = exc_type(f"{self.culprit()}: {exc}")
        except Exception:  # noqa: BLE001 - an exception type with other arguments: keep it
            return False
        raise named from exc


def _culprit(X):
    """'X' when X alone fails scikit-learn's checks, else 'y' (for errors of both)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            check_array(X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32))
    except (ValueError, TypeError):
        return "X"
    return "y"


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, fit loop, forward pass."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu", "leaky_relu", "elu",
                                   "softplus", "gelu", "swish"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam", "adamw"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dtype": [None, StrOptions({"float32", "float64"}), Options(type, {np.float32, np.float64})],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
        "clip_norm": [None, Interval(Real, 0, None, closed="neither")],
        "residual": ["boolean"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    # -- fitted parameters: views into the network's flat vector ---------------------------------

    def _fitted_net(self):
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"This {type(self).__name__} instance is not fitted yet")
        return net

    @property
    def coefs_(self):
        return self._fitted_net().coefs_

    @coefs_.setter
    def coefs_(self, values):
        self._fitted_net().coefs_ = values

    @property
    def intercepts_(self):
        return self._fitted_net().intercepts_

    @intercepts_.setter
    def intercepts_(self, values):
        self._fitted_net().intercepts_ = values

    # -- fit --------------------------------------------------------------------------------------

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, Integral) for s in sizes):
            raise TypeError(f"hidden_layer_sizes must be integers, got {sizes}.")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _optimizer(self):
        if self.solver == "sgd":
            return optim.SGD(self.momentum, nesterov=self.nesterovs_momentum)
        if self.solver == "adam":
            return optim.Adam(self.beta_1, self.beta_2, self.epsilon)
        if self.solver == "adamw":
            return optim.AdamW(self.beta_1, self.beta_2, self.epsilon, self.weight_decay)
        return optim.LBFGS(self.max_fun)

    def _schedule(self, first_seen):
        """The learning-rate schedule of a fit whose first epoch starts after ``first_seen``
        samples (of earlier warm-started fits)."""
        # As in scikit-learn, the schedules apply to solver='sgd' only.
        if self.solver != "sgd" or self.learning_rate == "constant":
            return optim.Constant()
        if self.learning_rate == "invscaling":
            return optim._InvScalingFromFit(self.power_t, first_seen)
        return optim.Adaptive()

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self._hidden_sizes()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        n_threads = _check_threads(self.n_threads)  # (capped at NUMBA_NUM_THREADS)
        first_pass = "_net" not in self.__dict__ or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sp.issparse(X):
            X = X.toarray()
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        n_samples, n_features = X.shape
        rng = check_random_state(self.random_state)

        if first_pass:
            dtype = np.dtype(self.dtype) if self.dtype is not None else X.dtype
            self.n_outputs_ = Y.shape[1]
            self.n_layers_ = len(hidden) + 2
            self.out_activation_ = self._out_activation()
            # The network draws its initial weights from rng exactly as scikit-learn does.
            self._net = Network([n_features] + hidden + [self.n_outputs_],
                                activation=self.activation,
                                output=_OUTPUTS[self.out_activation_], dtype=dtype,
                                random_state=rng, residual=self.residual,
                                dropout=self.dropout, batch_norm=self.batch_norm)
            self.t_ = 0
            for name in _STOCHASTIC_HISTORY:
                self.__dict__.pop(name, None)
        else:
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {Y.shape[1]} outputs, but this estimator was fitted "
                                 f"with {self.n_outputs_}")
            self._check_same_network()
            self._net._rng = rng
        had_history = "loss_curve_" in self.__dict__
        if self.solver != "lbfgs" and not had_history:
            # (the first stochastic fit, also a warm start after an L-BFGS fit)
            self.loss_curve_ = []
            early = self._early_stopping()
            self.best_loss_ = None if early else np.inf
            self.validation_scores_ = [] if early else None
            self.best_validation_score_ = -np.inf if early else None
        net = self._net
        # (finite after validation, but maybe not in the network's dtype: 1e39 in float32)
        X, Y = (_converted(name, a, net.dtype) for name, a in (("X", X), ("y", Y)))
        if sample_weight is not None:
            with _naming(lambda: "sample_weight"):
                sample_weight = _check_sample_weight(sample_weight, X)
        SW = check_sample_weight(sample_weight, n_samples, net.dtype)

        train_rows, val = np.arange(n_samples, dtype=np.int64), None
        if self._early_stopping():
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            train_rows, val_rows = train_test_split(np.arange(n_samples, dtype=np.int64),
                                                    random_state=rng,
                                                    test_size=self.validation_fraction,
                                                    stratify=stratify)
            if val_rows.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            val = (X[val_rows], Y[val_rows], None if sample_weight is None else SW[val_rows])

        n_train = train_rows.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_train))

        opt, lr0, sched = self._optimizer(), self.learning_rate_init, None
        if incremental and self.solver == "lbfgs":
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "lbfgs is not stochastic.")
        if incremental and net._optimizer is not None and not isinstance(net._optimizer,
                                                                         optim.LBFGS):
            # scikit-learn's partial_fit goes on with the optimizer it has, its rate and
            # schedule: what set_params changed of those applies from the next fit.
            opt = net._optimizer
            lr0, sched = net._fit_choices["learning_rate"], net._fit_choices["schedule"]
        continuing = incremental and net._hyper is not None and net._optimizer == opt
        # A warm-started fit, as scikit-learn's: a new optimizer, but the history goes on
        # (the samples seen, the stopping rule's best loss or score and its count), unless
        # the last fit was L-BFGS's, which has none.
        keep_history = (not first_pass and not incremental and self.solver != "lbfgs"
                        and had_history)
        start = len(net.loss_curve_) if continuing or keep_history else 0
        start_scores = len(net.validation_scores_) if continuing or keep_history else 0
        if sched is None:
            sched = self._schedule(net.t_ if keep_history else 0)
        max_iter = 1 if incremental else self.max_iter
        patience = int(min(self.n_iter_no_change, self.max_iter + 1))  # (inf is allowed)
        callbacks = [self._print_progress] if self.verbose else []
        if incremental:
            net._perm = None  # (each partial_fit shuffles the rows from their own order, as
            # scikit-learn's does, not from the last call's visiting order)
        net._check_layers_take(opt, batch_size, n_train)  # (a bad mix: rolled back, as above)
        carried = None
        if self.solver == "lbfgs" and not first_pass:
            # scikit-learn's L-BFGS leaves the stochastic solvers' state alone: a later
            # stochastic warm start goes on from its samples seen and stopping rule, and a
            # partial_fit with its optimizer.
            keys = ["t_", "best_loss_", "best_validation_score_", "_no_improvement"]
            if net._optimizer is not None and not isinstance(net._optimizer, optim.LBFGS):
                keys += ["_optimizer", "_opt_state", "_hyper", "_fit_choices", "_lr"]
            carried = {k: getattr(net, k) for k in keys}
        self._training_started = True  # from here on, a failure keeps the epochs that completed
        try:
            net._fit_validated(
                X, Y, SW, train_rows, val, epochs=max_iter, batch_size=batch_size,
                lr0=lr0, opt=opt, sched=sched, alpha=self.alpha,
                clip_norm=self.clip_norm, clip_value=None, shuffle=self.shuffle,
                early_stopping=self._early_stopping(),
                n_iter_no_change=patience, tol=self.tol,
                callbacks=callbacks, verbose=False, warm_start=incremental,
                n_threads=n_threads, keep_history=keep_history)
        finally:
            # Also after a DivergenceError (the network is back at its last good epoch) or an
            # error in a callback: the history says which epochs the weights have seen.
            self._record_epochs(net, start, start_scores, n_train)
            if carried is not None:
                net.__dict__.update(carried)
        if self.solver == "lbfgs":
            self._check_lbfgs(net)
        if (self.verbose and not incremental and self.solver != "lbfgs"
                and net._no_improvement > patience):
            what = "validation score" if self.early_stopping else "training loss"
            print(f"The {what} did not improve by more than tol={self.tol:g} in "
                  f"{self.n_iter_no_change} consecutive epochs: stopped.")
        if not incremental and self.solver != "lbfgs" and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                          "the optimization hasn't converged yet.", ConvergenceWarning)
        return self

    def _early_stopping(self):
        """Whether this fit holds data out: ``early_stopping`` with a stochastic solver
        (scikit-learn's L-BFGS ignores it, and trains on every row)."""
        return self.early_stopping and self.solver in _STOCHASTIC

    def _check_same_network(self):
        """A warm start or ``partial_fit`` trains the network of the first fit: a parameter
        that network was built with, changed since, is an error rather than ignored."""
        net = self._net
        built = {"activation": net.activation, "residual": net.residual,
                 "dropout": net.dropout, "batch_norm": net.batch_norm,
                 "hidden_layer_sizes": tuple(net.layers[1:-1])}
        if self.dtype is not None:
            built["dtype"] = net.dtype
        for name, value in built.items():
            now = getattr(self, name)
            if name == "hidden_layer_sizes":
                now = tuple(self._hidden_sizes())
            if (np.dtype(now) if name == "dtype" else now) != value:
                raise ValueError(f"{name}={now!r} differs from the {value!r} this estimator's "
                                 "network was built with: a warm start or partial_fit goes on "
                                 "training that network (fit with warm_start=False to build "
                                 "another)")

    def _record_epochs(self, net, start, start_scores, n_train):
        """The network's history since ``start`` into the estimator's attributes."""
        new_losses = net.loss_curve_[start:]
        self.n_iter_ = len(new_losses)
        if new_losses:
            self.loss_ = np.float64(new_losses[-1])  # (scikit-learn's type)
        if self.solver == "lbfgs":
            return  # (no history, as scikit-learn's L-BFGS: see _STOCHASTIC_HISTORY)
        self.loss_curve_ = self.loss_curve_ + new_losses
        self.t_ += n_train * self.n_iter_
        if self._early_stopping():
            self.validation_scores_ = self.validation_scores_ + net.validation_scores_[start_scores:]
            self.best_validation_score_ = max([self.best_validation_score_] + self.validation_scores_)
        elif new_losses:
            self.best_loss_ = min([self.best_loss_] + new_losses)

    def _transaction(self, step, *args):
        """``step(*args)``, which fits; if it raises before training starts (bad input, a bad
        mix of parameters), every attribute goes back to what it was, so that a failed fit
        leaves a fitted estimator as it was and an unfitted one unfitted.  Once training has
        started, a failure (``DivergenceError``, an error in a callback) keeps what the network
        kept: the weights of its last good epoch, and the history of the epochs that completed.
        """
        saved = dict(self.__dict__)
        try:
            return step(*args)
        except BaseException:
            if not self.__dict__.get("_training_started", False):
                self.__dict__.clear()
                self.__dict__.update(saved)
            raise
        finally:
            self.__dict__.pop("_training_started", None)

    def _check_lbfgs(self, net):
        result = getattr(net, "lbfgs_result_", None)
        if result is None:
            return
        self.loss_ = float(result.fun)
        if result.status != 0:
            message = result.message.decode() if isinstance(result.message, bytes) else result.message
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                          f"(status={result.status}):\n{message}.\n\nIncrease the number of "
                          "iterations to improve the convergence (max_iter="
                          f"{self.max_iter}).", ConvergenceWarning)

    def _print_progress(self, epoch, metrics):
        print(f"Iteration {epoch}, loss = {metrics['loss']:.8f}")
        if "validation_score" in metrics:
            print(f"Validation score: {metrics['validation_score']:f}")

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._validate_params()
        return self._transaction(self._fit, X, y, sample_weight, False)

    def _is_stochastic(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                                 f"{self.solver} is not stochastic.")
        return True

    # -- prediction -------------------------------------------------------------------------------

    def _forward(self, X):
        """Output-layer values (n_samples, n_outputs) for validated X."""
        check_is_fitted(self)
        with _naming(lambda: "X"), np.errstate(over="ignore", invalid="ignore"):
            # (errstate: scikit-learn's finiteness check sums X first, which may overflow)
            X = validate_data(self, X, accept_sparse=["csr", "csc"],
                              dtype=(np.float64, np.float32), reset=False)
        if sp.issparse(X):
            X = X.toarray()
        net = self._net
        # never an inf or a NaN prediction without a word: _forward raises
        return net._forward(np.ascontiguousarray(X, dtype=net.dtype))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Sparse matrices are accepted (and densified), as scikit-learn's MLP accepts them.
        tags.input_tags.sparse = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier``, on fastbp's kernels.

    Parameters are scikit-learn's (see ``sklearn.neural_network.MLPClassifier``), then
    fastbp's extras ``dtype``, ``n_threads``, ``clip_norm``, ``residual``, ``dropout``,
    ``batch_norm`` and ``weight_decay`` (for ``solver='adamw'``).  Binary, multiclass and
    multilabel (indicator matrix) targets.

    Attributes
    ----------
    classes_, loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_,
    t_, coefs_, intercepts_, n_features_in_, feature_names_in_, n_iter_, n_layers_,
    n_outputs_, out_activation_ : as in scikit-learn (L-BFGS fits have no ``loss_curve_``,
    ``best_loss_``, ``validation_scores_`` or ``best_validation_score_``); ``coefs_`` and
    ``intercepts_`` are views into one flat parameter vector.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, n_threads=None, clip_norm=None, weight_decay=0.01,
                 residual=False, dropout=0.0, batch_norm=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.clip_norm = clip_norm
        self.residual = residual
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.weight_decay = weight_decay

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        with _naming(lambda: _culprit(X)), np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                                 dtype=(np.float64, np.float32), reset=reset)
        with _naming(lambda: "y"), np.errstate(invalid="ignore", over="ignore"):
            # (errstate: scikit-learn casts float labels to int to see whether they are whole)
            return X, self._encode_labels(y, incremental)

    def _encode_labels(self, y, incremental):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes "
                                     f"as in the previous call to fit. Previously got "
                                     f"{self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        # bool, so that float32 data are not upcast on the way
        return self._label_binarizer.transform(y).astype(bool)

    def predict(self, X):
        """Predicted classes, shape (n_samples,) or (n_samples, n_classes) for multilabel."""
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities."""
        return np.log(self.predict_proba(X))

    @available_if(lambda est: est._is_stochastic())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing the optimizer state.

        ``classes`` (all the classes ``y`` may hold) is required on the first call, as in
        scikit-learn; for a multilabel indicator matrix ``y``, any value (the columns of
        ``y`` are the labels then, as scikit-learn takes them).
        """
        self._validate_params()
        return self._transaction(self._partial_fit, X, y, sample_weight, classes)

    def _partial_fit(self, X, y, sample_weight, classes):
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True  # indicator-matrix targets are supported
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor``, on fastbp's kernels.

    Parameters are scikit-learn's (see ``sklearn.neural_network.MLPRegressor``), then
    fastbp's extras ``dtype``, ``n_threads``, ``clip_norm``, ``residual``, ``dropout``,
    ``batch_norm`` and ``weight_decay`` (for ``solver='adamw'``).  ``loss='poisson'`` uses an
    exponential output.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, n_threads=None, clip_norm=None, weight_decay=0.01,
                 residual=False, dropout=0.0, batch_norm=False):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.clip_norm = clip_norm
        self.residual = residual
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.weight_decay = weight_decay

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        with _naming(lambda: _culprit(X)), np.errstate(over="ignore", invalid="ignore"):
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                                 y_numeric=True, dtype=(np.float64, np.float32), reset=reset)
        if y.dtype.kind not in "biuf":
            with _naming(lambda: "y"):
                y = y.astype(np.float64)  # numbers written as strings, read as before
        if not np.isfinite(y).all():
            # scikit-learn checks an object y (None among numbers) before converting it
            raise ValueError("Input y contains NaN or infinity.")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y")
        return X, y

    def predict(self, X):
        """Predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        y_pred = self._forward(X)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    @available_if(lambda est: est._is_stochastic())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing the optimizer state."""
        self._validate_params()
        return self._transaction(self._fit, X, y, sample_weight, True)


def _converted(name, a, dtype):
    """``a`` (finite) in C order as ``dtype``, or a ValueError naming ``name`` when its values
    overflow that dtype."""
    out = _convert(a, dtype)
    _check_finite(name, out, source=a)
    return out
