"""Save and load networks as ``.npz`` files, without pickle.

A file holds NumPy arrays only (read back with ``allow_pickle=False``, so loading
never runs code) and a JSON document ``spec`` with the architecture, the
optimizer and the training history.  ``load`` checks every field against what the
architecture implies before building the network, and reports any mismatch, a
truncated or corrupted file, or a file of another kind as ``ValueError``.
"""
import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

from . import optim

FORMAT = "fastbp.Network"
VERSION = 1

_OPTIMIZERS = {cls.__name__: cls for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.LBFGS)}
_HISTORY = ("n_iter_", "t_", "best_loss_", "best_validation_score_", "_epoch", "_lr",
            "_no_improvement")


def save(net, path):
    """Write ``net`` to ``path`` (an ``.npz`` archive), atomically.

    The archive is written to a temporary file in the same folder, then renamed
    over ``path``: a failure (a full disk, an unwritable folder) raises and leaves
    any existing file at ``path`` as it was.
    """
    path = os.fspath(path)
    rng_state = net._rng.get_state()
    spec = {
        "format": FORMAT, "version": VERSION,
        "layers": list(net.layers), "activation": net.activation, "output": net.output,
        "dtype": net.dtype.name, "init": net.init, "init_scale": net.init_scale,
        "optimizer": None if net._optimizer is None else {
            "name": type(net._optimizer).__name__, "params": vars(net._optimizer)},
        "history": {k: _plain(getattr(net, k)) for k in _HISTORY},
        "rng": {"pos": int(rng_state[2]), "has_gauss": int(rng_state[3]),
                "cached_gaussian": float(rng_state[4])},
    }
    arrays = {
        "spec": np.array(json.dumps(spec)),
        "params": net._params,
        "loss_curve": np.asarray(net.loss_curve_, dtype=np.float64),
        "validation_scores": np.asarray(net.validation_scores_, dtype=np.float64),
        "rng_keys": np.asarray(rng_state[1], dtype=np.uint32),
    }
    if net._optimizer is not None:
        arrays["opt_state"] = net._opt_state
        arrays["hyper"] = net._hyper
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path):
    """Read a network written by ``Network.save``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a fastbp model, is truncated or corrupted, or its
        contents do not agree with each other.
    """
    from .network import Network

    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path!r} is not a readable fastbp model file: {exc}") from None
    if not isinstance(data, dict) or "spec" not in data:
        raise ValueError(f"{path!r} is not a fastbp model file (no 'spec' entry)")
    spec = _read_spec(path, data["spec"])

    def bad(what):
        return ValueError(f"{path!r} is not a valid fastbp model file: {what}")

    try:
        net = Network(spec["layers"], spec["activation"], spec["output"], dtype=spec["dtype"],
                      random_state=0, init=spec["init"], init_scale=spec["init_scale"])
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"its architecture is invalid ({exc})") from None
    _expect(data, "params", net._params.shape, net.dtype, bad)
    _expect(data, "loss_curve", None, np.float64, bad)
    _expect(data, "validation_scores", None, np.float64, bad)
    _expect(data, "rng_keys", (624,), np.uint32, bad)
    net._params[:] = data["params"]
    net.loss_curve_ = data["loss_curve"].tolist()
    net.validation_scores_ = data["validation_scores"].tolist()
    try:
        rng = spec["rng"]
        net._rng.set_state(("MT19937", data["rng_keys"], int(rng["pos"]), int(rng["has_gauss"]),
                            float(rng["cached_gaussian"])))
        for key in _HISTORY:
            value = spec["history"][key]
            if value is not None and not isinstance(value, (int, float)):
                raise TypeError(f"history entry {key} is {value!r}")
            setattr(net, key, value)
        opt = spec["optimizer"]
        if opt is not None:
            net._optimizer = _OPTIMIZERS[opt["name"]](**opt["params"])
    except (TypeError, ValueError, KeyError) as exc:
        raise bad(f"its training state is invalid ({exc!r})") from None
    if net._optimizer is not None:
        _expect(data, "opt_state", (2, net._params.size), net.dtype, bad)
        _expect(data, "hyper", net._optimizer.hyper(0.0).shape, np.float64, bad)
        net._opt_state = data["opt_state"].copy()
        net._hyper = data["hyper"].copy()
    return net


def _read_spec(path, raw):
    if raw.shape != () or raw.dtype.kind != "U":
        raise ValueError(f"{path!r} is not a fastbp model file ('spec' is not a text entry)")
    try:
        spec = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r} is not a fastbp model file (its spec is not JSON: {exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastbp model file (format is not {FORMAT!r})")
    if spec.get("version") != VERSION:
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


def _plain(value):
    """A JSON-ready scalar."""
    if value is None:
        return None
    if isinstance(value, (np.integer, int)):
        return int(value)
    return float(value)
