"""Kernels compiled for the features a network uses.

The kernels branch at run time on each layer's activation, on the output, and on
batch normalization, dropout, shortcuts and the GEMM path, and Numba compiles every
branch of a kernel it compiles: a first fit of a 2-10-1 network compiled GELU, batch
normalization and the BLAS calls it never runs.  Each branch is guarded by a flag of
``_kernels._features`` (all True in ``fastbp._kernels``), and Numba drops the branches
whose flag is False before typing them.  ``kernels(table, dtype)`` returns the ``epoch`` module
of a copy of the kernels whose flags are those of the layer table: the modules that
read the flags are copied, once, into a folder of their own (Numba caches a kernel by
its source file, so each copy has its own cache), the others are the package's own.
"""
import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from . import _config
from ._kernels import _features
from ._kernels import activations as act
from ._kernels import losses
from ._spec import CODE, DROPOUT, FLAGS, G_OFF, N_IN, N_OUT, SHORTCUT

#: The kernel modules that read ``_features``: copied into each variant.
COPIED = ("activations", "dense", "epoch", "losses")
#: The others: each variant uses the package's own modules (compiled once for all).
SHARED = ("batchnorm", "blas", "dropout", "finite", "mathfn", "optimizers", "shuffle", "sync",
          "tiles")
#: The flags of ``_features`` in order (the bits of a variant's name).
FLAGS_ORDER = tuple(name for name in vars(_features) if name.startswith("WITH_"))

_HIDDEN = {act.LOGISTIC: "WITH_LOGISTIC", act.TANH: "WITH_TANH", act.RELU: "WITH_RELU",
           act.LEAKY_RELU: "WITH_LEAKY_RELU", act.ELU: "WITH_ELU",
           act.SOFTPLUS: "WITH_SOFTPLUS", act.GELU: "WITH_GELU", act.SWISH: "WITH_SWISH"}
_OUTPUT = {losses.OUT_SIGMOID: "WITH_OUT_SIGMOID", losses.OUT_SOFTMAX: "WITH_OUT_SOFTMAX",
           losses.OUT_POISSON: "WITH_OUT_POISSON"}

_LOCK = threading.Lock()
if hasattr(os, "register_at_fork"):  # (a child forked while another thread loaded a copy)
    os.register_at_fork(after_in_child=lambda: globals().update(_LOCK=threading.Lock()))
_CHOSEN = {}  # features needed -> the module chosen for them
_COMPILED = {}  # features compiled with -> module
_BY_TABLE = {}  # (layer table's bytes, dtype) -> the module chosen for it


def features(table):
    """The ``_features`` flags that the network of layer ``table`` needs True."""
    on = set()
    for code in table[:-1, CODE]:
        if int(code) in _HIDDEN:
            on.add(_HIDDEN[int(code)])
    if int(table[-1, CODE]) in _OUTPUT:
        on.add(_OUTPUT[int(table[-1, CODE])])
    flags = table[:-1, FLAGS]
    if (table[:, G_OFF] >= 0).any():
        on.add("WITH_BN")
    if (flags & DROPOUT).any():
        on.add("WITH_DROPOUT")
    if (flags & SHORTCUT).any():
        on.add("WITH_SHORTCUT")
    if on & {"WITH_DROPOUT", "WITH_SHORTCUT", "WITH_GELU", "WITH_SWISH"}:
        on.add("WITH_KEPT")
    # A layer leaves the loops for BLAS or the tiles only when both its widths reach
    # BLAS_MIN_WIDTH (the work threshold depends on the batch, which varies); the tiles
    # then take it, or its weight gradient, when it has few enough weights (and the batch
    # is small).
    for n_in, n_out in zip(table[:, N_IN], table[:, N_OUT]):
        if min(n_in, n_out) >= _config.BLAS_MIN_WIDTH:
            on.add("WITH_BLAS")
            if n_in * n_out <= max(_config.TILE_MAX_WEIGHTS, _config.TILE_MAX_GRAD_WEIGHTS):
                on.add("WITH_TILES")
    if splittable_first(table, 2):
        on.add("WITH_SPLIT_FIRST")
    return frozenset(on)


def splittable_first(table, parts):
    """Whether the first layer of the network of layer ``table`` has the shape that sliced
    batches split by its inputs among ``parts`` threads (``network._first_split``, which
    adds the batch's own condition): a hidden layer without a shortcut, of more than
    ``SPLIT_FIRST_MIN_WEIGHTS`` weights, wide enough for BLAS, with at least
    ``SPLIT_FIRST_MIN_INPUTS`` inputs for each part."""
    n_in, n_out = int(table[0, N_IN]), int(table[0, N_OUT])
    return bool(table.shape[0] > 1 and n_in >= parts * _config.SPLIT_FIRST_MIN_INPUTS
                and n_in * n_out > _config.SPLIT_FIRST_MIN_WEIGHTS
                and min(n_in, n_out) >= _config.BLAS_MIN_WIDTH
                and not table[0, FLAGS] & SHORTCUT)


#: A process compiles the kernels for the features of each network it trains until it has
#: compiled this many sets; the next set gets the package's own kernels, every path at
#: once, which serve any network after that (a session that tries many networks, a test
#: suite, a grid search over activations, does not compile each one's again).  Where the
#: package's own kernels are in Numba's cache for the dtype already, every process takes
#: them: loading is far cheaper than compiling a copy.
EXACT_VARIANTS = 3

#: Every flag: the package's own kernels.
ALL = frozenset(FLAGS_ORDER)


def kernels(table, dtype):
    """The ``epoch`` module (``run_epochs``, ``data_gradient``, ``predict_rows``) for the
    network of layer ``table`` in ``dtype``: one compiled with at least its features
    (``features``), the smallest of those this process has loaded, or else the package's
    own if they are cached for ``dtype``, or else a new one (``EXACT_VARIANTS``)."""
    # (by the table's bytes first: ``features`` took a third of a small predict's 20 us)
    seen = (table.tobytes(), dtype)  # (the table has 8 columns: its bytes give its rows)
    module = _BY_TABLE.get(seen)
    if module is not None:
        return module
    key = (features(table), np.dtype(dtype).name)
    module = _CHOSEN.get(key)
    if module is None:
        with _LOCK:
            module = _CHOSEN.get(key)
            if module is None:
                module = _CHOSEN[key] = _choose(*key)
    if len(_BY_TABLE) >= 4096:  # (a process that builds networks without end)
        _BY_TABLE.clear()
    _BY_TABLE[seen] = module
    return module


def _choose(need, dtype):
    """The module for the features ``need`` in ``dtype`` (call with ``_LOCK`` held)."""
    supersets = [on for on in _COMPILED if need <= on]
    if supersets:
        return _COMPILED[min(supersets, key=len)]
    exact = len(_COMPILED) < EXACT_VARIANTS and not _cached_whole(dtype)
    on = need if exact else ALL
    module = _COMPILED[on] = load(on)
    return module


def _cached_whole(dtype):
    """Whether Numba's cache holds the package's own ``run_epochs`` for ``dtype``, for its
    current source (Numba's index of a kernel's compiled versions, read as Numba reads it
    when it loads one; False where that reading fails)."""
    try:
        from ._kernels import epoch

        index = epoch.run_epochs._cache._cache_file._load_index()
        return any(str(key[0][0].dtype) == dtype for key in index)
    except Exception:  # (Numba's internals: the choice is only about time)
        return False


def load(on):
    """The ``epoch`` module of the kernels compiled with the flags ``on`` (a set of names
    of ``_features``; ``ALL``: the package's own)."""
    if on == ALL:
        return importlib.import_module("fastbp._kernels.epoch")
    return _load(on)


def _name(on):
    """The variant's name: its flags as a hexadecimal bit mask."""
    bits = sum(1 << i for i, name in enumerate(FLAGS_ORDER) if name in on)
    return f"{bits:0{(len(FLAGS_ORDER) + 3) // 4}x}"


def _sources():
    """The copied modules' sources, and a digest of every kernel source and ``_config`` (a
    change to any of them gives the variants new folders, so no stale compiled code is
    loaded for them)."""
    package = Path(_features.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")) + [Path(_config.__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {m: (package / f"{m}.py").read_bytes() for m in COPIED}, digest.hexdigest()[:16]


def _features_source(on):
    lines = ['"""Flags of this copy of the kernels (written by fastbp._variants)."""']
    lines += [f"{name} = {name in on}" for name in FLAGS_ORDER]
    return ("\n".join(lines) + "\n").encode()


def _roots():
    """Folders to write the copies in, in order of preference: beside the kernels, then
    the user's cache, then the temporary folder."""
    yield Path(_features.__file__).parent / "_variants"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    yield Path(cache) / "fastbp" / "kernels"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    yield Path(tempfile.gettempdir()) / f"fastbp-kernels-{uid}"


def _folder(on):
    """The variant's folder, written if it is not there (whole or not at all: a copy is
    written under a temporary name, then renamed)."""
    sources, digest = _sources()
    name = f"v{_name(on)}_{digest}"
    errors = []
    for root in _roots():
        folder = root / name
        if (folder / "epoch.py").is_file():
            return folder
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
            (tmp / "__init__.py").write_bytes(b'"""A copy of fastbp._kernels (see fastbp._variants)."""\n')
            (tmp / "_features.py").write_bytes(_features_source(on))
            for module, text in sources.items():
                (tmp / f"{module}.py").write_bytes(text)
            try:
                os.rename(tmp, folder)
            except OSError:
                # Another process wrote it first: use that one.
                for path in tmp.iterdir():
                    path.unlink()
                tmp.rmdir()
                if not (folder / "epoch.py").is_file():
                    raise
            return folder
        except OSError as exc:
            errors.append(f"{root}: {exc}")
    raise OSError("fastbp could not write its compiled kernels' sources in any of: "
                  + "; ".join(errors))


def _load(on):
    folder = _folder(on)
    name = f"fastbp._kernels_{folder.name.split('_')[0]}"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    for module in SHARED:
        shared = importlib.import_module(f"fastbp._kernels.{module}")
        sys.modules[f"{name}.{module}"] = shared
        setattr(package, module, shared)
    return importlib.import_module(f"{name}.epoch")
