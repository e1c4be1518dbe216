"""Save and load networks as ``.npz`` files, without pickle.

A file holds NumPy arrays only (read back with ``allow_pickle=False``, so loading
never runs code) and a JSON document ``spec`` with the architecture, the
optimizer and the training history.  ``load`` checks every field against what the
architecture implies before building the network, and reports any mismatch, a
truncated or corrupted file, or a file of another kind as ``ValueError``.
"""
import contextlib
import inspect
import io
import json
import math
import numbers
import os
import secrets
import stat
import warnings
import zipfile

import numpy as np

from . import optim
from ._kernels import optimizers as K
from ._spec import layer_table
from ._validation import check_layers

FORMAT = "fastbp.Network"
VERSION = 1

_OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.LBFGS)}
_SCHEDULES = {cls.__name__: cls for cls in (*optim.SCHEDULES.values(), optim._InvScalingFromFit)}
_HISTORY = ("n_iter_", "t_", "best_loss_", "best_validation_score_", "_epoch", "_lr",
            "_no_improvement")
_COUNTERS = ("n_iter_", "t_", "_epoch", "_no_improvement")
_RNG_KEYS = 624  # MT19937's state: 624 words and a position in 0..624


def save(net, path):
    """Write ``net`` to ``path`` (an ``.npz`` archive), atomically.

    The archive is written to a temporary file in the same folder, then renamed
    over ``path``: a failure (a full disk, an unwritable folder) raises and leaves
    any existing file at ``path`` as it was.  A symbolic link is written through (its
    target replaced, as ``open`` would write it); ``path`` must otherwise be a regular
    file or a new name.
    """
    path = _fspath(path)
    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        what = "a folder" if os.path.isdir(target) else "not a regular file"
        raise ValueError(f"cannot save to {path!r}: it is {what}")
    opt = net._optimizer
    if opt is not None and _OPTIMIZERS.get(type(opt).__name__) is not type(opt):
        raise ValueError(f"cannot save to {path!r}: the optimizer {opt!r} is not one of "
                         f"fastbp's ({', '.join(_OPTIMIZERS)}), so the file could not be loaded")
    bitgen = net._rng._bit_generator
    if not isinstance(bitgen, np.random.MT19937):
        raise ValueError(f"cannot save to {path!r}: the network's random_state draws from "
                         f"{type(bitgen).__name__}, and the file keeps an MT19937 state (pass "
                         "an int or a RandomState seeded as usual)")
    rng_state = net._rng.get_state()
    spec = {
        "format": FORMAT, "version": VERSION,
        "layers": list(net.layers), "activation": net.activation, "output": net.output,
        "dtype": net.dtype.name, "init": net.init, "init_scale": net.init_scale,
        "residual": net.residual, "dropout": net.dropout, "batch_norm": net.batch_norm,
        "dropout_state": [net._dropout_seed, net._dropout_epochs],
        "optimizer": None if net._optimizer is None else {
            "name": type(net._optimizer).__name__, "params": vars(net._optimizer)},
        "history": {k: _plain(getattr(net, k)) for k in _HISTORY},
        "rng": {"pos": int(rng_state[2]), "has_gauss": int(rng_state[3]),
                "cached_gaussian": float(rng_state[4])},
        "random_state": int(net.random_state) if _is_int(net.random_state) else None,
        "fit_choices": _fit_choices(net, path),
    }
    arrays = {
        "spec": np.array(json.dumps(spec)),
        "params": net._params,
        "loss_curve": np.asarray(net.loss_curve_, dtype=np.float64),
        "validation_scores": np.asarray(net.validation_scores_, dtype=np.float64),
        "gradient_norms": net.gradient_norms_,
        "rng_keys": np.asarray(rng_state[1], dtype=np.uint32),
    }
    if net._optimizer is not None:
        arrays["opt_state"] = net._opt_state
        arrays["hyper"] = net._hyper
    if net._perm is not None:
        arrays["perm"] = net._perm
    if net.batch_norm:
        arrays["running_stats"] = net._stats
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _checked_hyper(hyper, optimizer, bad):
    """The saved ``hyper`` array with the optimizer's own constants (its momentum, betas,
    epsilon and decay: those the file's optimizer entry states and its constructor
    checked), and the rest checked: the rate, the L2 term and the clipping limits finite
    and >= 0, the update count a whole number >= 0."""
    hyper = np.array(hyper, dtype=np.float64)
    own = optimizer.hyper(0.0)
    for i in (K.H_MOMENTUM, K.H_BETA1, K.H_BETA2, K.H_EPS, K.H_WEIGHT_DECAY):
        hyper[i] = own[i]
    rest = hyper[[K.H_LR, K.H_ALPHA, K.H_CLIP_NORM, K.H_CLIP_VALUE, K.H_STEP]]
    if not (np.isfinite(rest).all() and (rest >= 0).all()
            and hyper[K.H_STEP] == math.floor(hyper[K.H_STEP])):
        raise bad("the entry 'hyper' holds a negative, non-finite or fractional value "
                  "(learning rate, alpha, clipping limits or update count)")
    return hyper


def _fit_choices(net, path):
    """What a warm start after ``load`` takes from the last fit when left out: its first
    learning rate and its schedule (None: no fit, or a schedule of the user's own, which
    the file cannot hold without pickle; a warm start then goes on at the current rate)."""
    choices = getattr(net, "_fit_choices", None)
    if choices is None:
        return None
    sched = choices["schedule"]
    if _SCHEDULES.get(type(sched).__name__) is not type(sched):
        warnings.warn(f"saving to {path!r}: the schedule {sched!r} is not one of fastbp's "
                      f"({', '.join(optim.SCHEDULES)}), so the file does not keep it; pass it "
                      "again to a warm-started fit of the loaded network", UserWarning,
                      stacklevel=4)
        return None
    # (its constructor's arguments, which load passes back: not any other attribute)
    names = [p.name for p in inspect.signature(type(sched)).parameters.values()
             if p.kind is p.POSITIONAL_OR_KEYWORD]
    return {"learning_rate": float(choices["learning_rate"]),
            "schedule": {"name": type(sched).__name__,
                         "params": {k: getattr(sched, k) for k in names}}}


def _fspath(path):
    """``path`` as a str (bytes decoded as the file system does), or a TypeError that says
    which argument was wrong."""
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str, bytes or os.PathLike file name, got "
                        f"{type(path).__name__} {path!r}") from None


def _create_temporary(path):
    """A new file next to ``path``, with the mode a plain ``open`` would give it: that of
    the file it replaces, else 0o666 less the umask.

    ``tempfile.mkstemp`` would make it 0o600 whatever the umask, and the saved model
    unreadable to anyone but its owner.
    """
    folder, name = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        return fd, tmp
    raise FileExistsError(f"cannot save to {path!r}: no free temporary name in {folder!r}")


def load(path):
    """Read a network written by ``Network.save``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    OSError
        When ``path`` cannot be opened (a folder, no permission to read it).
    ValueError
        When the file is not a fastbp model, is truncated or corrupted, or its
        contents do not agree with each other.
    """
    from .network import Network

    path = _fspath(path)
    data = _read_arrays(path)
    if "spec" not in data:
        raise ValueError(f"{path!r} is not a fastbp model file (no 'spec' entry)")
    spec = _read_spec(path, data["spec"])

    def bad(what):
        return ValueError(f"{path!r} is not a valid fastbp model file: {what}")

    try:
        # The parameter count first: a damaged width must not allocate a huge network.
        layers = check_layers(spec["layers"])
        batch_norm = spec.get("batch_norm", False)  # absent from files before batch norm
        if not isinstance(batch_norm, bool):
            raise TypeError(f"batch_norm must be true or false, got {batch_norm!r}")
        n_params = layer_table(layers, 0, 0, batch_norm=batch_norm)[1]
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"its architecture is invalid ({exc})") from None
    if "params" not in data:
        raise bad("the entry 'params' is missing")
    if data["params"].shape != (n_params,):
        raise bad(f"the entry 'params' has shape {data['params'].shape}, expected ({n_params},) "
                  f"for layers {list(layers)}")
    try:
        net = Network(layers, spec["activation"], spec["output"], dtype=spec["dtype"],
                      random_state=0, init=spec["init"], init_scale=spec["init_scale"],
                      residual=spec.get("residual", False), dropout=spec.get("dropout", 0.0),
                      batch_norm=batch_norm)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise bad(f"its architecture is invalid ({exc})") from None
    state = spec.get("dropout_state", [0, 0])
    # (the seed as the network draws it; then seed + epochs + any fit's epochs fit int64)
    if not (isinstance(state, list) and len(state) == 2
            and all(_is_int(v) and 0 <= v < limit for v, limit in zip(state, (2 ** 62, 2 ** 61)))):
        raise bad(f"its dropout state is invalid ({state!r})")
    net._dropout_seed, net._dropout_epochs = state
    _expect(data, "params", net._params.shape, net.dtype, bad)
    _expect(data, "loss_curve", None, np.float64, bad)
    _expect(data, "validation_scores", None, np.float64, bad)
    _expect(data, "rng_keys", (_RNG_KEYS,), np.uint32, bad)
    net._params[:] = data["params"]
    if batch_norm:
        _expect(data, "running_stats", net._stats.shape, net.dtype, bad)
        net._stats[:] = data["running_stats"]
        if not (np.isfinite(net._stats).all() and all((v >= 0).all() for v in net.running_vars_)):
            raise bad("its running statistics are not finite, or a variance is negative")
    net.loss_curve_ = data["loss_curve"].tolist()
    net.validation_scores_ = data["validation_scores"].tolist()
    if "gradient_norms" in data:  # absent from files of fastbp before it recorded them
        _expect(data, "gradient_norms", (len(net.loss_curve_), len(layers) - 1), np.float64, bad)
        net._gradient_norms = [data["gradient_norms"]]
    try:
        rng = spec["rng"]
        pos, has_gauss, gauss = rng["pos"], rng["has_gauss"], rng["cached_gaussian"]
        # NumPy does not check the position: outside 0..624 the generator reads out of bounds.
        if not (_is_int(pos) and 0 <= pos <= _RNG_KEYS and _is_int(has_gauss)
                and has_gauss in (0, 1) and _is_finite(gauss)):
            raise ValueError(f"random state {rng!r} is out of range")
        net._rng.set_state(("MT19937", data["rng_keys"], pos, has_gauss, float(gauss)))
        for key in _HISTORY:
            value = spec["history"][key]
            if key in _COUNTERS:
                ok = _is_int(value) and value >= 0
            elif key == "_lr":
                ok = value is None or (_is_finite(value) and value > 0)
            else:  # best_loss_, best_validation_score_: a NaN would stall every comparison
                ok = value is None or _is_finite(value)
            if not ok:
                raise TypeError(f"history entry {key} is {value!r}")
            setattr(net, key, value)
        opt = spec["optimizer"]
        if opt is not None:
            net._optimizer = _OPTIMIZERS[opt["name"]](**opt["params"])
        # (both absent from files of fastbp before it kept them)
        seed = spec.get("random_state")
        if not (seed is None or (_is_int(seed) and 0 <= seed < 2 ** 32)):
            raise ValueError(f"random_state {seed!r} is not a seed")
        net.random_state = net._rng if seed is None else seed
        choices = spec.get("fit_choices")
        if choices is not None:
            lr0, sched = choices["learning_rate"], choices["schedule"]
            if not (_is_finite(lr0) and lr0 > 0):
                raise ValueError(f"learning rate {lr0!r} is out of range")
            net._fit_choices = {"learning_rate": float(lr0),
                                "schedule": _SCHEDULES[sched["name"]](**sched["params"])}
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise bad(f"its training state is invalid ({exc!r})") from None
    if net._optimizer is not None:
        _expect(data, "opt_state", (2, net._params.size), net.dtype, bad)
        _expect(data, "hyper", net._optimizer.hyper(0.0).shape, np.float64, bad)
        net._opt_state = data["opt_state"].copy()
        net._hyper = _checked_hyper(data["hyper"], net._optimizer, bad)
        if net._optimizer.kind in (K.ADAM, K.ADAMW) and (net._opt_state[1] < 0).any():
            raise bad("the entry 'opt_state' holds negative second moments")
    if "perm" in data:
        _expect(data, "perm", None, np.int64, bad)
        perm = data["perm"]
        if not np.array_equal(np.sort(perm), np.arange(perm.shape[0])):
            raise bad("the entry 'perm' is not a permutation")
        net._perm = perm.copy()
    return net


def _read_arrays(path):
    """The arrays of the ``.npz`` archive at ``path``, by name, read without pickle."""
    with open(path, "rb") as f:  # a missing or unreadable path raises its own OSError
        try:
            with zipfile.ZipFile(f) as archive:
                data = {}
                for info in archive.infolist():
                    if not info.filename.endswith(".npy"):
                        raise ValueError(f"its entry {info.filename!r} is not a .npy array")
                    try:
                        data[info.filename[:-4]] = _read_npy(archive.read(info))
                    except ValueError as exc:
                        raise ValueError(f"its entry {info.filename!r} {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{path!r} is not a readable fastbp model file: {exc}") from None
        except (MemoryError, TimeoutError):  # (not damage: memory, or a timeout's signal)
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile reports damage in many types:
            # BadZipFile, EOFError, zlib.error, NotImplementedError (an unknown compression
            # method or zip version), RuntimeError (an entry flagged as encrypted), ...
            raise ValueError(f"{path!r} is not a readable fastbp model file: "
                             f"{type(exc).__name__}: {exc}") from None
    return data


def _read_npy(raw):
    """One ``.npy`` entry; its header must agree with its length, and it holds no objects."""
    buf = io.BytesIO(raw)
    version = np.lib.format.read_magic(buf)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise ValueError(f"has .npy format version {version}, not 1.0 or 2.0")
    shape, _, dtype = read_header(buf)
    if dtype.hasobject:
        raise ValueError("holds Python objects, which are never unpickled")
    size = math.prod(shape) * dtype.itemsize
    if size != len(raw) - buf.tell():
        raise ValueError(f"declares {size} bytes of data ({dtype}, shape {shape}) but holds "
                         f"{len(raw) - buf.tell()}")
    buf.seek(0)
    return np.lib.format.read_array(buf, allow_pickle=False)


def _read_spec(path, raw):
    if raw.shape != () or raw.dtype.kind != "U":
        raise ValueError(f"{path!r} is not a fastbp model file ('spec' is not a text entry)")
    try:
        spec = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:  # bad JSON, a huge integer, deep nesting
        raise ValueError(f"{path!r} is not a fastbp model file (its spec is not JSON: {exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastbp model file (format is not {FORMAT!r})")
    if type(spec.get("version")) is not int or spec["version"] != VERSION:
        raise ValueError(f"{path!r} was written by a fastbp model format version "
                         f"{spec.get('version')!r}; this fastbp reads version {VERSION}")
    return spec


def _expect(data, name, shape, dtype, bad):
    if name not in data:
        raise bad(f"the entry {name!r} is missing")
    arr = data[name]
    if arr.dtype != np.dtype(dtype) or (shape is None and arr.ndim != 1) or \
            (shape is not None and arr.shape != tuple(shape)):
        raise bad(f"the entry {name!r} has dtype {arr.dtype} and shape {arr.shape}, expected "
                  f"{np.dtype(dtype)} and {'1-D' if shape is None else tuple(shape)}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all() and name != "loss_curve":
        raise bad(f"the entry {name!r} holds NaN or infinity")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite(value):
    """A real number that converts to a finite float (JSON holds integers beyond any float)."""
    try:
        return _is_real(value) and math.isfinite(float(value))
    except OverflowError:
        return False


def _plain(value):
    """A JSON-ready scalar."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)):
        return int(value)
    return float(value)
